"""Media items: validated uploads and job results, signed download URLs, retention."""
