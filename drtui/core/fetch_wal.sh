#!/bin/sh
# drtui's restore_command: hand PostgreSQL one WAL file from a WAL source, and prefetch the next segments.
#
#   sh fetch_wal.sh SOURCE SEGMENT_SIZE PAGE_MAGIC LINK %f %p       (run by PostgreSQL in the data directory)
#
# SOURCE is only ever read. LINK=ln (a private staged copy) hard-links files, LINK=cp copies them.
# PAGE_MAGIC is the server version's WAL page magic in hex (d110 for PostgreSQL 15), or - to skip that check.
#
# Exit 0: the file is at %p. Exit 1: SOURCE has no such file, which PostgreSQL takes for the end of the WAL
# (or, for a segment already prefetched whole into pg_wal, tells it to read that copy). Exit 170: the file is
# there but cannot be replayed (unreadable, wrong size, a first page that is not this segment's, a failed
# copy): PostgreSQL treats an exit code above 125 as fatal and stops recovery with an error, instead of
# ending the WAL early and promoting with data missing. The reason goes to stderr, that is the server log.
#
# A miss of a segment is recorded as SPOOL/<name>.missing: drtui promotes a restore to 'latest' only once
# PostgreSQL has asked for the segment after the newest one the source holds.
#
# From a folder drtui's WAL feeder fills (see walfeed.py), a file the feeder has not delivered yet is waited for.
#
# Prefetch (LINK=cp): each call starts (unless one is running) a background copy of the next DEPTH segments, each
# checked, copied beside pg_wal, renamed into pg_wal whole, marked archived (archive_status/<name>.done, as
# PostgreSQL marks what it restores) and only then recorded as SPOOL/<name>.ok.

a=$1 size=$2 magic=$3 link=$4 f=$5 p=$6
s=pg_wal/.drtui-prefetch
depth=8
per_id=$((0x100000000 / size))

# Whether the segment file $1 named $2 can be replayed; if not, $why says why (no subshell: one fork less).
check() {
    n=$(wc -c <"$1") || { why="cannot be read"; return 1; }
    [ "$n" -eq "$size" ] || { why="has the wrong size: $n bytes, a WAL segment has $size"; return 1; }
    # The first page's long header, as four native 32-bit words: magic | info << 16, timeline, and the
    # page address (low, high): it must be this segment's start on this segment's timeline.
    # shellcheck disable=SC2046
    set -- "$2" $(od -A n -t x4 -N 16 "$1")
    [ $# -eq 5 ] || { why="cannot be read"; return 1; }
    ct=${1%????????????????} cx=${1#????????}
    cl=${cx%????????} cg=${cx#????????}
    if [ "$magic" != - ] && [ "${2#????}" != "$magic" ]; then
        why="is damaged: its first page has magic number ${2#????}, not $magic (not a WAL segment of this version)"
        return 1
    fi
    if [ $((0x$3)) -ne $((0x$ct)) ] || [ $((0x$4)) -ne $(((0x$cg * size) % 0x100000000)) ] ||
       [ $((0x$5)) -ne $((0x$cl)) ]; then
        why="is damaged: its first page belongs to timeline $((0x$3)) at $5/$4, not to this segment"
        return 1
    fi
}

fail() {
    echo "drtui fetch_wal: WAL file $f in $a $1; recovery stops here instead of ending the WAL early" >&2
    exit 170
}

segment=no
case $f in *[!0-9A-F]*) ;; *) [ ${#f} -eq 24 ] && segment=yes;; esac

# A folder drtui's WAL feeder fills from a bucket: .drtui-feed lists what it delivers (its pid first). Wait
# for a listed file; one it does not list is not in the bucket, and is missing as below.
if [ -f "$a/.drtui-feed" ] && [ ! -e "$a/$f" ] && grep -qxF "$f" "$a/.drtui-feed"; then
    feeder=$(head -n 1 "$a/.drtui-feed")
    until [ -e "$a/$f" ]; do
        if [ -f "$a/.drtui-feed-failed" ]; then fail "$(cat "$a/.drtui-feed-failed")"; fi
        [ -d "/proc/$feeder" ] || fail "was never delivered: the drtui process feeding WAL from the bucket ended"
        sleep 0.1
    done
fi

if [ $segment = yes ] && [ -f "$s/$f.ok" ] && [ -f "pg_wal/$f" ]; then
    r=1
elif [ ! -e "$a/$f" ]; then
    if [ $segment = yes ]; then mkdir -p "$s" && : >"$s/$f.missing"; fi
    exit 1
else
    [ -r "$a/$f" ] || fail "cannot be read by $(id -un), the user PostgreSQL runs as"
    if [ $segment = yes ]; then check "$a/$f" "$f" || fail "$why"; fi
    if [ "$link" = ln ]; then
        ln "$a/$f" "$p" 2>/dev/null || cp "$a/$f" "$p" || fail "could not be copied into pg_wal (the cp error is above)"
    else
        cp "$a/$f" "$p" || fail "could not be copied into pg_wal (the cp error is above)"
    fi
    r=0
fi
[ $segment = yes ] && [ "$link" = cp ] || exit $r  # a link is instant: nothing to prefetch

if [ ! -d "$s/.lock" ]; then (
    mkdir -p "$s" && mkdir "$s/.lock" || exit 0
    trap 'rmdir "$s/.lock"' EXIT
    t=${f%????????????????} x=${f#????????}
    l=${x%????????} g=${x#????????}
    i=1
    while [ $i -le $depth ]; do
        n=$((0x$g + i))
        m=$(printf %s%08X%08X "$t" $((0x$l + n / per_id)) $((n % per_id)))
        if [ ! -f "$s/$m.ok" ]; then
            [ -f "$a/$m" ] && [ -r "$a/$m" ] && check "$a/$m" "$m" || break
            cp "$a/$m" "$s/$m.tmp" || break
            mv -f "$s/$m.tmp" "pg_wal/$m" && : >"pg_wal/archive_status/$m.done" && : >"$s/$m.ok" || break
        fi
        i=$((i + 1))
    done
) </dev/null >/dev/null 2>&1 & fi
exit $r
