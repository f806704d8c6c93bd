"""Simulation: the spiking simulator and the ANN reference executor."""
