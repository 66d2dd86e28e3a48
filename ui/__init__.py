"""Streamlit-side helpers: the only package besides pages/ and app.py that imports streamlit."""
