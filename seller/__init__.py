"""SELLER: sequence-aware, explainable recommendations for luxury clienteling.

The library reads as the pipeline: data -> encoders -> recommend -> adapter -> llm -> explain
-> evaluate -> feedback. The Streamlit app in app/ only calls into it.
"""
__version__ = "0.1.0"
