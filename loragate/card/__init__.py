"""What the user asks for: the task card (YAML validated by pydantic), `--set` overrides of it, and the run's
options beside it. The first layer of the run: it imports no other loragate layer at load time.

`from loragate.card import TaskCard` is public (task modules of users' projects use it), so the card's classes
are re-exported here."""

from loragate.card.settings import (
                                    TIERS,
                                    CardError,
                                    DataSettings,
                                    EvalSettings,
                                    GateSettings,
                                    LoraSettings,
                                    SplitFractions,
                                    TaskCard,
                                    Tier,
                                    TierSettings,
                                    TinyBase,
                                    TrainSettings,
)

__all__ = ["TIERS", "CardError", "DataSettings", "EvalSettings", "GateSettings", "LoraSettings", "SplitFractions",
           "TaskCard", "Tier", "TierSettings", "TinyBase", "TrainSettings"]
