"""Super-resolve an image through TF Serving's gRPC API.

    python export/serving/grpc_client.py photo.png --scale=2 --output=photo_x2.png \
        [--target=localhost:8500]

Needs ``tensorflow-serving-api`` (and grpcio, which it brings).
"""

import argparse
import sys


def build_request(image_bytes, scale, model_name="vdsr"):
    """A ``PredictRequest`` for the ``upscale_image`` signature (one image)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "upscale_image"
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image_bytes], dtype=tf.string))
    request.inputs["scale"].CopyFrom(tf.make_tensor_proto([float(scale)], dtype=tf.float32))
    return request


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model_name", default="vdsr")
    args = parser.parse_args()
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with open(args.image, "rb") as f:
        request = build_request(f.read(), args.scale, args.model_name)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(args.target))
    try:
        response = stub.Predict(request, timeout=300)
    except grpc.RpcError as e:
        sys.exit(f"grpc_client: {e.code().name}: {e.details()}")
    with open(args.output, "wb") as f:
        f.write(response.outputs["png_bytes"].string_val[0])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
