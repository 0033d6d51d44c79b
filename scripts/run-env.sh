# The environment scripts/run.sh runs devicehub with, sourced by it and by scripts/doctor.sh
# (after scripts/lib.sh, with BIN, SIM and SCENARIO set): the stores on this machine, the broker
# over TLS, and with the simulator its router, Shelly devices and camera. DEVELOPMENT DEFAULTS:
# every credential here is a published development value.

# Loopback only: devicehub refuses the development JWT secret on any other address.
export DEVICEHUB__HTTP__BIND="${DEVICEHUB__HTTP__BIND:-127.0.0.1:8080}"
export DEVICEHUB__INFLUXDB__API="${DEVICEHUB__INFLUXDB__API:-v1}"
export DEVICEHUB__AUTH__JWT_SECRET="${DEVICEHUB__AUTH__JWT_SECRET:-dev-only-insecure-jwt-secret-change-me-0123456789}"
# The archive and the Parquet lake go to the local S3 server (bucket iot-data), as they would to
# MinIO in a real deployment.
export DEVICEHUB__ARCHIVE__BACKEND="${DEVICEHUB__ARCHIVE__BACKEND:-s3}"
export DEVICEHUB__S3__ENDPOINT="${DEVICEHUB__S3__ENDPOINT:-http://127.0.0.1:$S3_PORT}"
export DEVICEHUB__S3__ACCESS_KEY="${DEVICEHUB__S3__ACCESS_KEY:-$S3_DEV_ACCESS_KEY}"
export DEVICEHUB__S3__SECRET_KEY="${DEVICEHUB__S3__SECRET_KEY:-$S3_DEV_SECRET_KEY}"
# Over TLS, as devices and devicehub talk in a deployment (the CA from `devicehub certs mqtt`).
MQTT_CA="$ROOT/data/mosquitto/certs/ca.crt"
BROKER="mqtts://127.0.0.1:$DEVICEHUB_BROKER_TLS_PORT"
# The pollers too: with the simulator, devicehub polls its Mikrotik emulator (HTTPS with the
# simulator's self-signed certificate as the trusted CA, the scenario's development password),
# the Shelly devices the router's leases name (on port 8081, the scenario's development device
# password) and its HikVision camera.
export DEVICEHUB__ROLES="${DEVICEHUB__ROLES:-api,collector,pollers,analytics}"
if [ "${DEVICEHUB_SIMULATOR:-1}" != 0 ]; then
  ROUTER_CERT="$("$SIM" tls-cert --scenario "$SCENARIO")"
  export DEVICEHUB__MIKROTIK__URL="${DEVICEHUB__MIKROTIK__URL:-https://127.0.1.1:8081/rest}"
  export DEVICEHUB__MIKROTIK__CA_FILE="${DEVICEHUB__MIKROTIK__CA_FILE:-$ROUTER_CERT}"
  export DEVICEHUB__MIKROTIK__PASSWORD="${DEVICEHUB__MIKROTIK__PASSWORD:-dev-only-router-password}"
  export DEVICEHUB__SHELLY__PORT="${DEVICEHUB__SHELLY__PORT:-8081}"
  export DEVICEHUB__SHELLY__PASSWORD="${DEVICEHUB__SHELLY__PASSWORD:-dev-only-shelly-password}"
  # The scenario's Gen1 Shelly 2.5: the one host the password may go to by basic auth.
  export DEVICEHUB__SHELLY__GEN1_HOSTS="${DEVICEHUB__SHELLY__GEN1_HOSTS:-127.0.1.13:8081}"
  export DEVICEHUB__HIKVISION__HOSTS="${DEVICEHUB__HIKVISION__HOSTS:-127.0.1.20:8081}"
  export DEVICEHUB__HIKVISION__PASSWORD="${DEVICEHUB__HIKVISION__PASSWORD:-dev-only-camera-password}"
  export DEVICEHUB__INVENTORY__METADATA_CSV="${DEVICEHUB__INVENTORY__METADATA_CSV:-config/simulator/device_metadata.csv}"
fi
export DEVICEHUB__MQTT__URL="${DEVICEHUB__MQTT__URL:-mqtts://devicehub:$BROKER_DEV_PASSWORD@127.0.0.1:$DEVICEHUB_BROKER_TLS_PORT}"
export DEVICEHUB__MQTT__CA_FILE="${DEVICEHUB__MQTT__CA_FILE:-$MQTT_CA}"

