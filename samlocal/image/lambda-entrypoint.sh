#!/bin/sh
# The contract of the Lambda base images' /lambda-entrypoint.sh: the handler is the one argument;
# without AWS_LAMBDA_RUNTIME_API (outside Lambda) the runtime interface emulator fronts the runtime.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
else
  exec /var/runtime/bootstrap
fi
