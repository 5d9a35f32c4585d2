"""Looking at a model's results and at its training data.

* :mod:`.report`: every analysis of a results file (``tools/analyze_results.py``):
  TIDE's error breakdown (:mod:`.tide`), precision-recall curves (:mod:`.pr_curves`),
  a confusion matrix (:mod:`.confusion`), the best and worst images
  (:mod:`.image_scores`, :mod:`.drawing`), on the data of :mod:`.records`.
* :mod:`.browse`: training samples drawn after the train mapper (``tools/browse_dataset.py``).

The modules are imported one by one: :mod:`.tide` brings in ``tidecv`` (and with it
pandas and seaborn), which browsing does not need.
"""
