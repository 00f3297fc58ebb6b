"""ViTPain in Flax NNX: DINOv3 backbone, LoRA, heads (no torch imports)."""

from jaxpain.models import heads, layers, lora, rope, vit, vitpain

__all__ = ['heads', 'layers', 'lora', 'rope', 'vit', 'vitpain']
