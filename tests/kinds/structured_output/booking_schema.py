"""A schema with every shape the structured kind scores: top-level values, an ordered list, a set, a nested object
(with a list of its own) and an optional nested object. Tests import it; write_project copies it into a project."""

from pydantic import BaseModel, ConfigDict


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    building: str
    room: str
    codes: list[str]


class Booking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guest: str
    location: Location
    stops: list[str]
    badges: set[str]
    backup: Location | None = None
