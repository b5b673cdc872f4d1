"""Simulation in the loop: Gymnasium environments as robots of the platform (PushT).

Only the robot client talks to the server. Needs the ``sim`` extra (gymnasium, gym-pusht);
see docs/simulation.md.
"""
