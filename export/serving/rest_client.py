"""Super-resolve an image through TF Serving's REST API.

    python export/serving/rest_client.py photo.png --scale=2 --output=photo_x2.png \
        [--url=http://localhost:8501/v1/models/vdsr]

Uses the ``upscale_image`` signature with the row ("instances") format and
base64 bytes, as TF Serving documents for binary inputs. Standard library only.
"""

import argparse
import base64
import json
import sys
import urllib.request


def request_body(image_bytes, scale):
    """The JSON body for ``upscale_image`` (one image)."""
    return {
        "signature_name": "upscale_image",
        "instances": [
            {
                "image_bytes": {"b64": base64.b64encode(image_bytes).decode("ascii")},
                "scale": float(scale),
            }
        ],
    }


def decode_response(body):
    """PNG bytes from a ``:predict`` response of ``upscale_image``."""
    predictions = body["predictions"]
    # A signature with one output gets bare values per row, else named ones.
    first = predictions[0]
    value = first["png_bytes"] if "png_bytes" in first else first
    return base64.b64decode(value["b64"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--url", default="http://localhost:8501/v1/models/vdsr")
    args = parser.parse_args()
    with open(args.image, "rb") as f:
        body = json.dumps(request_body(f.read(), args.scale)).encode()
    req = urllib.request.Request(
        args.url + ":predict", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            png = decode_response(json.load(resp))
    except OSError as e:
        sys.exit(f"rest_client: request to {args.url} failed: {e}")
    with open(args.output, "wb") as f:
        f.write(png)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
