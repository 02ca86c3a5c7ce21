"""Authorization: who may do what. One function decides; the door calls it for every operation."""
