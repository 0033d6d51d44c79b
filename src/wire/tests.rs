use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

use uuid::Uuid;

use super::*;
use crate::domain::CommandResult;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 12, 16, 0, 5).unwrap()
}

fn decode(topic: &str, payload: Value) -> Result<Message, Rejection> {
    Decoder::default().decode(topic, payload.to_string().as_bytes(), now())
}

fn kind(topic: &str, payload: &[u8]) -> RejectKind {
    Decoder::default()
        .decode(topic, payload, now())
        .unwrap_err()
        .kind
}

fn metrics(m: &Message) -> Vec<(String, f64, Option<String>)> {
    m.readings()
        .iter()
        .map(|r| {
            (
                r.metric.to_string(),
                r.value,
                r.unit.as_ref().map(|u| u.as_str().to_owned()),
            )
        })
        .collect()
}

#[test]
fn v1_flat_message_of_seed_004() {
    let m = decode(
        "iot/device-001/telemetry",
        json!({"timestamp": "2026-02-12T16:00:00.000Z", "device_id": "device-001", "temperature": 23.5, "unit": "celsius"}),
    )
    .unwrap();
    assert_eq!(
        metrics(&m),
        [("temperature".into(), 23.5, Some("celsius".into()))]
    );
    assert_eq!(
        m.readings()[0].time,
        Utc.with_ymd_and_hms(2026, 2, 12, 16, 0, 0).unwrap()
    );
    assert_eq!(m.seq(), None);
}

#[test]
fn v1_smart_house_message_keeps_every_numeric_field() {
    let m = decode(
        "iot/device_001/telemetry",
        json!({"device_id": "device_001", "device_type": "thermostat", "timestamp": "2026-02-12T10:30:00Z",
               "temperature": 22.5, "power_usage": 1800.0, "energy_consumption_wh": 30.0,
               "status": "online", "alert": "none"}),
    )
    .unwrap();
    let mut got = metrics(&m);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("energy_consumption_wh".into(), 30.0, Some("Wh".into())),
            ("power_usage".into(), 1800.0, Some("W".into())),
            ("temperature".into(), 22.5, Some("°C".into())),
        ]
    );
}

#[test]
fn v2_datagram_with_per_sample_times() {
    let m = decode(
        "iot/meter-7/telemetry",
        json!({"v": 2, "device_id": "meter-7", "ts": "2026-02-12T16:00:04Z", "seq": 41, "msg_type": "telemetry",
               "measurements": [
                   {"ts": "2026-02-12T16:00:00Z", "type": "voltage_dc", "val": 751.2, "unit": "V"},
                   {"ts": "2026-02-12T16:00:01Z", "type": "current_dc", "val": 112.0, "unit": "A"},
                   {"type": "voltage_dc", "val": 749.9, "unit": "V"}]}),
    )
    .unwrap();
    assert_eq!(m.seq(), Some(41));
    let r = m.readings();
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[1].time,
        Utc.with_ymd_and_hms(2026, 2, 12, 16, 0, 1).unwrap()
    );
    assert_eq!(
        r[2].time,
        Utc.with_ymd_and_hms(2026, 2, 12, 16, 0, 4).unwrap(),
        "envelope ts is the default"
    );
}

#[test]
fn common_v2_datagrams_take_the_fast_path() {
    let decoder = Decoder::default();
    let ctx = Ctx {
        now: now(),
        decoder: &decoder,
    };
    let id = DeviceId::parse("meter-1").unwrap();
    let datagram = json!({"v": 2, "device_id": "meter-1", "seq": 7, "ts": "2026-02-12T16:00:00Z",
        "measurements": [{"type": "voltage_dc", "val": 750, "unit": "V"},
                         {"type": "current_dc", "val": -1.5, "unit": "A", "ts": 1770912001000i64}]});
    let fast = ctx
        .telemetry_v2_fast(&id, datagram.to_string().as_bytes())
        .expect("read by the fast path");
    assert_eq!(Ok(fast), decode("iot/meter-1/telemetry", datagram));
    // An escaped string cannot be borrowed: the general path reads it.
    let escaped = br#"{"seq":1,"measurements":[{"type":"voltage_dc","val":1,"unit":"\u00b0C"}]}"#;
    assert!(ctx.telemetry_v2_fast(&id, escaped).is_none());
    assert_eq!(
        metrics(
            &decoder
                .decode("iot/meter-1/telemetry", escaped, now())
                .unwrap()
        ),
        [("voltage_dc".into(), 1.0, Some("°C".into()))]
    );
}

#[test]
fn hello_status_ack_and_ota() {
    let hello = decode(
        "iot/m1/hello",
        json!({"v": 2, "device_id": "m1", "seq": 0, "fw_version": "2.4.1", "uptime_s": 12, "broker_connections": 2, "buf_usage_pct": 3.5}),
    )
    .unwrap();
    let Message::Hello {
        fw_version,
        readings,
        ..
    } = &hello
    else {
        panic!("{hello:?}")
    };
    assert_eq!(fw_version, "2.4.1");
    assert_eq!(readings.len(), 3);

    let status = decode(
        "iot/m1/status",
        json!({"v": 2, "device_id": "m1", "status": "offline", "ts": 1770912000}),
    )
    .unwrap();
    assert!(matches!(status, Message::Status { online: false, .. }));

    let id = Uuid::new_v4();
    let ack = decode(
        "iot/m1/command/ack",
        json!({"cmd_id": id.to_string(), "result": "accepted", "detail": "ok"}),
    )
    .unwrap();
    assert_eq!(
        ack,
        Message::CommandAck {
            device_id: DeviceId::parse("m1").unwrap(),
            cmd_id: id,
            result: CommandResult::Accepted,
            detail: Some("ok".into())
        }
    );

    let ota = decode(
        "iot/m1/ota/status",
        json!({"cmd_id": id.to_string(), "ota_state": "downloading", "progress_pct": 40}),
    )
    .unwrap();
    assert!(matches!(
        ota,
        Message::OtaStatus {
            progress_pct: Some(40),
            ..
        }
    ));
}

#[test]
fn qs_events_single_and_batch_with_bad_ones_kept_apart() {
    let m = decode(
        "qs/v1/esp32-01/events",
        json!([
            {"schema": 1, "event_id": "esp32-01-1", "device_id": "esp32-01", "event_type": "temperature",
             "value": 23.5, "unit": "C", "ts_device": "2026-02-10T00:00:00Z", "meta": {"sensor": "dht22"}},
            {"schema": 1, "event_id": "esp32-01-2", "device_id": "esp32-01", "event_type": "button_press", "value": "long",
             "timestamp": "2026-02-10 01:00:00"},
            {"schema": 1, "device_id": "esp32-01", "event_type": "x"},
            {"schema": 1, "event_id": "e4", "device_id": "other", "event_type": "x"}
        ]),
    )
    .unwrap();
    let Message::Events { events, .. } = &m else {
        panic!()
    };
    let first = events[0].as_ref().unwrap();
    assert_eq!(first.value_num, Some(23.5));
    assert_eq!(first.meta, json!({"sensor": "dht22"}));
    assert!(
        first.reading.is_some(),
        "numeric events also go to InfluxDB"
    );
    let second = events[1].as_ref().unwrap();
    assert_eq!(second.value_text.as_deref(), Some("long"));
    assert_eq!(
        second.ts_device,
        Some(Utc.with_ymd_and_hms(2026, 2, 10, 1, 0, 0).unwrap()),
        "no offset: configured zone (UTC)"
    );
    assert_eq!(
        events[2].as_ref().unwrap_err().reason.kind,
        RejectKind::MissingField
    );
    let mismatch = events[3].as_ref().unwrap_err();
    assert_eq!(
        (mismatch.event_id.as_deref(), mismatch.reason.kind),
        (Some("e4"), RejectKind::DeviceMismatch)
    );
}

#[test]
fn times_without_offset_use_the_configured_zone() {
    let decoder = Decoder {
        local_zone: chrono_tz::Europe::Prague,
        ..Decoder::default()
    };
    let payload = json!({"schema": 1, "event_id": "a", "device_id": "d", "event_type": "t", "ts_device": "2026-02-10T12:00:00"});
    let m = decoder
        .decode("qs/v1/d/events", payload.to_string().as_bytes(), now())
        .unwrap();
    let Message::Events { events, .. } = m else {
        panic!()
    };
    assert_eq!(
        events[0].as_ref().unwrap().ts_device,
        Some(Utc.with_ymd_and_hms(2026, 2, 10, 11, 0, 0).unwrap())
    );
}

#[test]
fn shelly_switch_status_and_notify_status() {
    let status = json!({"id": 1, "source": "timer", "output": true, "apower": 12.5, "voltage": 230.1,
                        "current": 0.06, "aenergy": {"total": 1234.5}, "temperature": {"tC": 41.2, "tF": 106.2}});
    let m = decode("shellypro4pm-a8032ab1c2d3/status/switch:1", status.clone()).unwrap();
    let names: Vec<String> = metrics(&m).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(
        names,
        [
            "switch1.power",
            "switch1.voltage",
            "switch1.current",
            "switch1.energy",
            "switch1.temperature",
            "switch1.output"
        ]
    );
    let rpc = decode(
        "shellypro4pm-a8032ab1c2d3/events/rpc",
        json!({"src": "shellypro4pm-a8032ab1c2d3", "method": "NotifyStatus", "params": {"ts": 1770912000.5, "switch:1": status}}),
    )
    .unwrap();
    assert_eq!(rpc.readings().len(), 6);
    assert_eq!(
        decode("shellyplus1-x/status/sys", json!({"uptime": 5})).unwrap(),
        Message::Ignored
    );
}

#[test]
fn text_fields_with_nul_or_control_characters_are_refused_and_dot_ids_are_no_devices() {
    let id = Uuid::new_v4();
    let cases = [
        (
            "iot/m/hello",
            json!({"fw_version": "1.0\u{0}", "uptime_s": 1}),
        ),
        ("iot/m/hello", json!({"fw_version": "1.0\n2"})),
        (
            "iot/m/command/ack",
            json!({"cmd_id": id, "result": "accepted", "detail": "ok\u{0}"}),
        ),
        (
            "iot/m/ota/status",
            json!({"cmd_id": id, "ota_state": "down\u{1b}loading"}),
        ),
    ];
    for (topic, payload) in cases {
        assert_eq!(
            decode(topic, payload.clone()).unwrap_err().kind,
            RejectKind::ControlCharacter,
            "{payload}"
        );
    }
    let detail = json!({"cmd_id": id, "result": "error", "detail": "line 1\nline 2"});
    assert!(
        decode("iot/m/command/ack", detail).is_ok(),
        "free text keeps its lines"
    );
    let event = |extra: Value| {
        let mut e = json!({"schema": 1, "event_id": "e1", "device_id": "m", "event_type": "door"});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        match decode("qs/v1/m/events", e).unwrap() {
            Message::Events { events, .. } => events.into_iter().next().unwrap(),
            other => panic!("{other:?}"),
        }
    };
    for extra in [
        json!({"event_id": "e\u{0}"}),
        json!({"event_type": "door\r"}),
        json!({"unit": "\u{0}"}),
        json!({"value": "open\u{0}"}),
        json!({"meta": {"note": ["ok", "bad\u{0}"]}}),
    ] {
        let rejection = event(extra.clone()).unwrap_err();
        assert_eq!(
            rejection.reason.kind,
            RejectKind::ControlCharacter,
            "{extra}"
        );
    }
    assert!(event(json!({"meta": {"note": "two\nlines"}})).is_ok());
    for topic in ["iot/./telemetry", "iot/../telemetry", "qs/v1/../events"] {
        assert_eq!(kind(topic, b"{}"), RejectKind::InvalidDeviceId, "{topic}");
    }
}

#[test]
fn malformed_payloads_are_rejected_by_kind() {
    let t = "iot/d1/telemetry";
    assert_eq!(kind(t, b"not json"), RejectKind::NotJson);
    assert_eq!(kind(t, b"[1,2]"), RejectKind::WrongShape);
    assert_eq!(
        kind(t, br#"{"v":2,"measurements":"x"}"#),
        RejectKind::WrongType
    );
    assert_eq!(
        kind(t, br#"{"v":2,"measurements":[{"type":"a","val":"high"}]}"#),
        RejectKind::WrongType
    );
    assert_eq!(
        kind(t, br#"{"v":2,"measurements":[{"type":"a","val":"NaN"}]}"#),
        RejectKind::NonFiniteValue
    );
    assert_eq!(kind(t, br#"{"temperature": NaN}"#), RejectKind::NotJson);
    assert_eq!(kind(t, br#"{"temperature": 1e999}"#), RejectKind::NotJson);
    assert_eq!(
        kind(t, br#"{"device_id":"d2","temperature":1}"#),
        RejectKind::DeviceMismatch
    );
    assert_eq!(
        kind(
            t,
            br#"{"timestamp":"1970-01-01T00:00:00Z","temperature":1}"#
        ),
        RejectKind::TimestampOutOfRange
    );
    assert_eq!(
        kind(
            t,
            br#"{"timestamp":"2099-01-01T00:00:00Z","temperature":1}"#
        ),
        RejectKind::TimestampOutOfRange
    );
    assert_eq!(kind(t, br#"{"status":"online"}"#), RejectKind::MissingField);
    assert_eq!(
        kind(t, br#"{"v":2,"measurements":[{"type":"a b","val":1}]}"#),
        RejectKind::InvalidName
    );
    let many: Vec<Value> = (0..201).map(|i| json!({"type": "a", "val": i})).collect();
    assert_eq!(
        kind(
            t,
            json!({"v": 2, "measurements": many}).to_string().as_bytes()
        ),
        RejectKind::TooManyMeasurements
    );
    assert_eq!(kind(t, &vec![b' '; 1024 * 1024]), RejectKind::TooLarge);
    assert_eq!(
        kind("iot/bad id/telemetry", b"{}"),
        RejectKind::InvalidDeviceId
    );
    assert_eq!(kind("iot/d1/unknown", b"{}"), RejectKind::UnknownTopic);
    assert_eq!(
        kind("iot/d1/status", br#"{"status":"sleepy"}"#),
        RejectKind::WrongShape
    );
    assert_eq!(
        kind(
            "iot/d1/command/ack",
            br#"{"cmd_id":"nope","result":"accepted"}"#
        ),
        RejectKind::WrongType
    );
}

#[test]
fn topics_name_their_device() {
    let d = Decoder::default();
    assert_eq!(d.topic_device("iot/m1/command/ack").unwrap().as_str(), "m1");
    assert_eq!(d.topic_device("qs/v1/esp/events").unwrap().as_str(), "esp");
    assert_eq!(
        d.topic_device("shelly-1/status/switch:0").unwrap().as_str(),
        "shelly-1"
    );
    assert!(d.topic_device("shelly-1/status/sys").is_none());
    assert!(d.topic_device("nope").is_none());
}

#[test]
fn subscriptions_cover_every_routed_topic() {
    let subs = Decoder::default().subscriptions();
    assert!(subs.contains(&"iot/+/telemetry".to_owned()));
    assert!(subs.contains(&"qs/v1/+/events".to_owned()));
}

const TOPICS: &[&str] = &[
    "iot/d/telemetry",
    "iot/d/hello",
    "iot/d/status",
    "iot/d/command/ack",
    "iot/d/ota/status",
    "qs/v1/d/events",
    "shelly-1/status/switch:0",
    "shelly-1/events/rpc",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9:._ -]{0,12}".prop_map(Value::from),
        Just(Value::from("2026-02-12T16:00:00Z")),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("v".to_owned()),
                    Just("device_id".to_owned()),
                    Just("ts".to_owned()),
                    Just("seq".to_owned()),
                    Just("measurements".to_owned()),
                    Just("type".to_owned()),
                    Just("val".to_owned()),
                    Just("unit".to_owned()),
                    Just("event_id".to_owned()),
                    Just("schema".to_owned()),
                    Just("event_type".to_owned()),
                    Just("value".to_owned()),
                    Just("status".to_owned()),
                    Just("cmd_id".to_owned()),
                    Just("result".to_owned()),
                    Just("params".to_owned()),
                    Just("method".to_owned()),
                    Just("switch:0".to_owned()),
                    Just("apower".to_owned()),
                    Just("fw_version".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field values a v2 datagram may carry, valid or not: what the fast path must either read
/// exactly as the general path does, or leave to it.
fn v2_field() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        (1_600_000_000i64..1_800_000_000).prop_map(Value::from),
        (1_600_000_000_000i64..1_800_000_000_000).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(Value::from(1.5e300)),
        prop_oneof![
            Just("meter-1"),
            Just("meter-2"),
            Just("voltage_dc"),
            Just("current dc"),
            Just("V"),
            Just("\u{b0}C"),
            Just("q\"uote"),
            Just("NaN"),
            Just("2026-02-12T16:00:00Z"),
            Just("2026-02-12T16:00:00.123+01:00"),
            Just("2026-02-12 16:00:00"),
            Just("1999-12-31T23:59:59Z"),
            Just("2030-01-01T00:00:00Z"),
        ]
        .prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

fn v2_datagram() -> impl Strategy<Value = Value> {
    let measurement = prop::collection::btree_map(
        prop_oneof![
            Just("type".to_owned()),
            Just("val".to_owned()),
            Just("ts".to_owned()),
            Just("unit".to_owned()),
            Just("extra".to_owned()),
        ],
        v2_field(),
        0..5,
    )
    .prop_map(|mut m| {
        // Mostly well-formed measurements, so that the fast path is exercised.
        m.entry("type".into())
            .or_insert_with(|| Value::from("voltage_dc"));
        m.entry("val".into()).or_insert_with(|| Value::from(750.5));
        Value::Object(m.into_iter().collect())
    });
    (
        prop::collection::btree_map(
            prop_oneof![
                Just("v".to_owned()),
                Just("device_id".to_owned()),
                Just("seq".to_owned()),
                Just("ts".to_owned()),
                Just("extra".to_owned()),
            ],
            v2_field(),
            0..5,
        ),
        prop_oneof![
            prop::collection::vec(measurement, 0..4).prop_map(Value::Array),
            v2_field(),
        ],
    )
        .prop_map(|(mut envelope, measurements)| {
            envelope.insert("measurements".into(), measurements);
            Value::Object(envelope.into_iter().collect())
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_v2_fast_path_reads_exactly_what_the_general_path_reads(value in v2_datagram(), spaced in any::<bool>()) {
        let payload = if spaced { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
        let payload = payload.unwrap();
        let decoder = Decoder::default();
        let ctx = Ctx { now: now(), decoder: &decoder };
        let id = DeviceId::parse("meter-1").unwrap();
        let general = decoder.decode_value(&ctx, Route::Telemetry(id.clone()), payload.as_bytes());
        if let Some(fast) = ctx.telemetry_v2_fast(&id, payload.as_bytes()) {
            prop_assert_eq!(Ok(fast), general);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(topic in prop::sample::select(TOPICS), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Decoder::default().decode(topic, &bytes, now());
    }

    #[test]
    fn arbitrary_json_never_panics_and_readings_are_finite(topic in prop::sample::select(TOPICS), value in json_value()) {
        if let Ok(message) = Decoder::default().decode(topic, value.to_string().as_bytes(), now()) {
            for r in message.readings() {
                prop_assert!(r.value.is_finite());
            }
        }
    }

    #[test]
    fn arbitrary_topics_never_panic(topic in "[a-z0-9/+#:. -]{0,40}") {
        let _ = Decoder::default().decode(&topic, b"{}", now());
    }
}
