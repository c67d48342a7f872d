"""The Keras VDSR network, its theta/lr clip and losses, and the one weights loader."""
