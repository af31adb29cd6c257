"""Board top-levels, builds and programming."""
