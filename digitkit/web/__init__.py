"""The page `digitkit serve` serves (one HTML file, no build step, nothing from a CDN)."""
