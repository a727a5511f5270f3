"""What the scores say, computed from scores and runs alone (never a model call): depth
recommendation, output-cut quality, score distribution, the dropped/rescued audit."""
