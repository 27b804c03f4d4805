"""End-to-end jobs composed from the library's pieces."""
