"""Pure analysis logic about wandb runs. Nothing below this package imports streamlit."""
