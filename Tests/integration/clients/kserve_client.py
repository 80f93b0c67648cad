"""Runs KServe's own InferenceRESTClient (v2 protocol) against a SparseServe URL.

Called by test_kserve.py with the interpreter of the kserve venv (kserve pulls ~450 MB of
dependencies, so it lives apart from the main test venv). Prints one JSON line of results.
"""
import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest


async def main(base_url, inputs_path):
    x = np.load(inputs_path)
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=1, timeout=30))
    try:
        live = await client.is_server_live(base_url)
        ready = await client.is_server_ready(base_url)
        model_ready = await client.is_model_ready(base_url, "digits")
        tensor = InferInput(name="input", shape=list(x.shape), datatype="FP32")
        tensor.set_data_from_numpy(x.astype(np.float32), binary_data=False)
        request = InferRequest(model_name="digits", infer_inputs=[tensor], request_id="kserve-1")
        response = await client.infer(base_url, request, model_name="digits")
        outputs = {o.name: o.as_numpy().tolist() for o in response.outputs}
        missing = None
        try:
            await client.infer(base_url, request, model_name="no-such-model")
        except Exception as e:  # the client raises on 4xx; record what it saw
            missing = type(e).__name__ + ": " + str(e)[:300]
    finally:
        await client.close()
    print(json.dumps({"live": live, "ready": ready, "model_ready": model_ready, "id": response.id,
                      "model_name": response.model_name, "outputs": outputs, "missing": missing}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
