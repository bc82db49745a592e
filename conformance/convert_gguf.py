"""Convert the GGUF model into a Hugging Face model folder, once, for ``transformers serve``.

``transformers serve`` cannot serve the GGUF itself (the config transformers builds from a Llama GGUF
has no ``architectures``: ``TypeError: 'NoneType' object is not subscriptable``); transformers' own
GGUF reader converts it (dequantised to float32) into a folder it serves. Run with the transformers
venv's python: ``convert_gguf.py MODEL.gguf OUT_DIR``; a folder that is already there is kept.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path


def main() -> None:
    gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
    if (out / "config.json").is_file():
        print(out)
        return
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # the loaded model is marked "quantized with gguf" and refuses save_pretrained: its weights are
    # already dequantised, so a plain model of the same config takes them
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"conformance: converted {gguf.name} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main()
