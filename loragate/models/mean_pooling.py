"""A classification head over the mean of an encoder's token states (a card's `pooling: mean`).

AutoModelForSequenceClassification reads the first token ([CLS]) through the checkpoint's pooler. A sentence
embedding model such as all-MiniLM-L6-v2 was trained to represent a sentence by the mean of its token states
instead; its [CLS] state and pooler were never trained for that. Trained on 522 real SST-2 sentences, the [CLS]
head reached 0.743 test accuracy and this one 0.823 (docs/real-data.md).
"""

from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class MeanPooledClassifier(PreTrainedModel):
    """Encoder -> token states averaged over the attention mask -> dropout -> one linear layer over the labels.

    `classifier` is the new head (the card's modules_to_save); `sentence_encoder` is the pretrained model
    unchanged, so LoRA's target modules keep their names (query, value, ...)."""

    config_class = AutoConfig  # a saved copy reloads with its encoder's own config class (BertConfig, ...)
    base_model_prefix = "sentence_encoder"
    _supports_sdpa = True  # attention runs inside the encoder, loaded with the implementation it supports

    def __init__(self, config: PretrainedConfig, encoder: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        self.sentence_encoder = encoder if encoder is not None else AutoModel.from_config(config)
        dropout = getattr(config, "hidden_dropout_prob", getattr(config, "dropout", 0.1))
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @classmethod
    def around(cls, encoder: PreTrainedModel, **head_config: object) -> MeanPooledClassifier:
        """A new head (initialised from torch's current seed) over a loaded encoder; `head_config` sets the
        labels (num_labels, id2label, label2id) on the encoder's config."""
        for name, value in head_config.items():
            setattr(encoder.config, name, value)
        return cls(encoder.config, encoder).to(encoder.dtype)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **unused: object) -> SequenceClassifierOutput:
        """`unused`: what peft's sequence-classification wrapper passes on (inputs_embeds, output_attentions,
        ...), which must be None (return_dict may be True: the output is a SequenceClassifierOutput): the head reads
        the token ids and their mask, nothing else."""
        given = sorted(name for name, value in unused.items()
                       if value is not None and not (name == "return_dict" and value is True))
        if given:
            raise TypeError(f"MeanPooledClassifier.forward: {given} are not supported; pass input_ids, "
                            f"attention_mask, token_type_ids and labels only")
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        states = self.sentence_encoder(**inputs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = torch.nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
