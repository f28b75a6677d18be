"""The catalog users pick from: style presets, style groups, LoRA templates."""
