"""The Textual face of drtui."""
