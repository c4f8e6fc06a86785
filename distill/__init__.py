"""Egocentric vision students and world models distilled from privileged teachers (to come)."""
