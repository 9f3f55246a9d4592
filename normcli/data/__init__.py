"""Everything that touches files and streams of data: formats, inputs, outputs, read errors."""
