"""EgoPush-specific perception, hand-written: odometry and a depth-layer map (``odometry_map``),
box corners from the role-layer depth images (``geometry``), and what the research probes share
(``probes``). Nothing here is learned."""
