"""Stand-in of ``WhisperWrappedEncoder``: openai-whisper's encoder with its fp32 LayerNorms made plain."""

from torch import nn


class WhisperWrappedEncoder:
    @classmethod
    def load(cls, model_config):
        import whisper
        from whisper.model import LayerNorm

        def plain_norms(module: nn.Module) -> None:
            for name, child in module.named_children():
                if isinstance(child, LayerNorm):
                    # device=: also right inside transformers 5's meta-device construction (4.43 has none)
                    ln = nn.LayerNorm(child.normalized_shape, eps=child.eps,
                                      elementwise_affine=child.elementwise_affine, device=child.weight.device)
                    ln.load_state_dict(child.state_dict())
                    setattr(module, name, ln)
                else:
                    plain_norms(child)

        encoder = whisper.load_model(name=model_config.speech_encoder, device="cpu").encoder
        plain_norms(encoder)
        return encoder
