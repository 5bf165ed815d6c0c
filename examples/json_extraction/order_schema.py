"""The output schema of the orders task: what a shop's order intake must extract from a customer's message."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer: str = Field(min_length=1)
    item: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=20)
    city: str = Field(min_length=1)
    express: bool
    tags: list[Literal["gift", "fragile", "bulk"]]
