"""Catalogs: accelerators and models, loaded lazily from the data files shipped in the package."""
from stockpile.catalog.chips import Chip, get_chip, list_chips
from stockpile.catalog.models import ModelSpec, get_model, list_models

__all__ = ["Chip", "get_chip", "list_chips", "ModelSpec", "get_model", "list_models"]
