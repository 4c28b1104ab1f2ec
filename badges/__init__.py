"""Badge layouts, PDF rendering, print jobs and kiosks."""
