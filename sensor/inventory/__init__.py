"""Persistent AI asset inventory (SQLite), its exports (table, JSON, CSV, CycloneDX AI-BOM)."""

from sensor.inventory.store import (
    AssetSet,
    ClientAsset,
    Inventory,
    McpServerAsset,
    ServerAsset,
    ServiceAsset,
    UserAsset,
    assets_of,
    default_db_path,
)

__all__ = [
    "AssetSet",
    "ClientAsset",
    "Inventory",
    "McpServerAsset",
    "ServerAsset",
    "ServiceAsset",
    "UserAsset",
    "assets_of",
    "default_db_path",
]
