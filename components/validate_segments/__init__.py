"""validate_segments: the model gate of the continuous-training pipeline (TFMA-like, per segment).

``metrics`` computes per-segment metrics with bootstrap intervals and a paired comparison to the production model,
``gates`` turns them into per-check verdicts and a blessing, with Markdown and HTML reports.
"""
