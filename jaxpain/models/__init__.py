"""ViTPain in Flax NNX: DINOv3 backbone, LoRA, heads (no torch imports)."""

from jaxpain.models import flops, heads, layers, lora, rope, vit, vitpain

__all__ = ['flops', 'heads', 'layers', 'lora', 'rope', 'vit', 'vitpain']
