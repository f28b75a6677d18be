"""Classic vision models whose weights ship in their wheels (MediaPipe): pose and friends."""
