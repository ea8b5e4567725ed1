"""The logged model as MLflow models-from-code: MLflow runs this file to build the model when it loads it (no
pickle to deserialize); the model's params blocks come from its `model_config` (GoModel.load_context), its code
from the model's `code/` folder."""

from mlflow.models import set_model

from cafa_mlflow.serving.pyfunc import GoModel

set_model(GoModel())
