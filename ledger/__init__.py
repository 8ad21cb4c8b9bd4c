"""Kovra's ledger: the TigerBeetle account model, the clients and the money operations.

Every balance Kovra reports lives in TigerBeetle (or, on a developer machine, in the embedded
engine that mimics it). This package turns Kovra's domain operations (deposits, holds,
payouts, currency exchange) into TigerBeetle transfers and back.
"""
