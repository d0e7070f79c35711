"""MLServer's XGBoost runtime, plus one dtype cast, for the serving benchmark.

The V2 protocol has no categorical datatype: with the pandas codec a categorical feature arrives as a column of
strings, which XGBoost refuses for a booster trained with native categoricals. This subclass casts exactly the
booster's categorical features (feature type "c") to pandas' category dtype after the stock decoding; XGBoost
(3.1 and later) maps the values to the categories stored in the model. Everything else is the stock runtime.
"""

import pandas as pd
from mlserver_xgboost import XGBoostModel


class CategoricalXGBoostModel(XGBoostModel):
    async def load(self) -> bool:
        loaded = await super().load()
        booster = self._model.get_booster()
        names, types = booster.feature_names or [], booster.feature_types or []
        self._categorical = {name: "category" for name, kind in zip(names, types) if kind == "c"}
        return loaded

    def decode_request(self, payload, default_codec=None):
        decoded = super().decode_request(payload, default_codec=default_codec)
        if isinstance(decoded, pd.DataFrame) and self._categorical:
            decoded = decoded.astype(self._categorical)
        return decoded
