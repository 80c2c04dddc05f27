"""Human-readable hunt reports (one self-contained HTML file)."""
