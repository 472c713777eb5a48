"""The measured-data loop: rows -> predictions -> errors -> fit, for inference and training.

    rows.py           a CSV row of published measurements -> a typed case (inference), read and checked
    inference.py      inference cases resolved against the catalogs, predicted (vectorised), validated
    training.py       training rows -> cases -> predictions, validated
    status.py         one vocabulary for a row that is not predicted: "invalid" or "unsupported"
    fitter.py         the one fitter: robust least squares on log(predicted / measured), log-space parameters
    fit_inference.py  the inference parameters (perf/calibration.py) fitted with it; leave one source out
    fit_training.py   the training parameters fitted with it

Data flows one way: catalog -> perf -> this package; the CLI and the API call it.
"""
