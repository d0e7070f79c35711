"""gateway: the embedded mode's stand-in for Seldon's ingress and executor (control image).

``state`` reads SeldonDeployment objects from a local folder, ``predictors`` runs one model-server process per
predictor and swaps them without dropping requests, ``app`` routes traffic by weight, mirrors to shadows and logs
CloudEvents, with Seldon's metric names.
"""
