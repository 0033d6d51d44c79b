//! What one batch of messages changes in the registry, gathered in journal order, and the one
//! PostgreSQL transaction that applies it together with the sink's cursor.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{CommandResult, EventRejection, Message, QsEvent};
use crate::registry;

/// Device-keyed maps of this sink: foldhash with a per-process random seed, much cheaper than
/// SipHash on the ingest path.
type DeviceMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

use crate::pipeline::idle::IdleMap;

/// What one batch of messages changes in the registry, in journal order.
#[derive(Debug, Default)]
pub struct RegistryBatch {
    /// Per device: last message time, final connection state, newest firmware.
    devices: DeviceMap<DeviceUpdate>,
    sequences: DeviceMap<i64>,
    gaps: Vec<(String, u64, u64)>,
    acks: Vec<CommandAnswer>,
    ota: Vec<(Uuid, String, String, Option<u8>)>,
    events: Vec<(QsEvent, DateTime<Utc>)>,
    pub rejected_events: Vec<(String, EventRejection)>,
    /// Roughly what the batch holds in memory.
    bytes: usize,
}

/// What a message costs the batch at least (its device's entries), and an event besides its
/// text.
const MESSAGE_BYTES: usize = 64;
const EVENT_BYTES: usize = 256;

/// A device's answer to a command.
#[derive(Debug)]
struct CommandAnswer {
    cmd_id: Uuid,
    device: String,
    result: CommandResult,
    detail: Option<String>,
    at: DateTime<Utc>,
}

#[derive(Debug)]
struct DeviceUpdate {
    seen: DateTime<Utc>,
    online: bool,
    fw_version: Option<String>,
}

/// The last `seq` per device, for gap detection in journal order (loaded from PostgreSQL). The
/// devices idle longest are forgotten past [`crate::pipeline::idle::DEVICE_STATE_CAPACITY`] and
/// restored from PostgreSQL when they return ([`SequenceState::restore`]).
#[derive(Debug, Default, Clone)]
pub struct SequenceState {
    last: IdleMap<String, u64>,
}

impl SequenceState {
    pub async fn load(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let mut last = IdleMap::default();
        for (device, seq) in registry::sequences::last_numbers(pool).await? {
            last.insert(device, seq);
        }
        Ok(Self { last })
    }

    /// Before `observe`: the stored last number of each of `devices` that was forgotten.
    pub async fn restore<'a>(&mut self, pool: &PgPool, devices: impl Iterator<Item = &'a str>) {
        if !self.last.has_forgotten() {
            return;
        }
        let missing = devices.filter(|d| !self.last.contains_key(*d)).collect();
        for (device, seq) in registry::sequences::restore(pool, missing).await {
            self.last.insert(device, seq);
        }
    }

    /// Records `seq`; returns the missing range when numbers were skipped.
    fn observe(&mut self, device: &str, seq: u64) -> Option<(u64, u64)> {
        let gap = match self.last.get(device) {
            Some(&last) if seq > last + 1 => Some((last + 1, seq - 1)),
            _ => None,
        };
        match self.last.get_mut(device) {
            // A late copy of an older number changes nothing; 0 is a restart.
            Some(last) if seq <= *last && seq != 0 => {}
            Some(last) => *last = seq,
            None => {
                self.last.insert(device.to_owned(), seq);
            }
        }
        gap
    }
}

impl RegistryBatch {
    /// Drops the sequence gaps seen so far (a collector in a shared subscription raises none).
    pub fn forget_gaps(&mut self) {
        self.gaps.clear();
    }

    pub fn add(
        &mut self,
        received: DateTime<Utc>,
        message: &Message,
        sequences: &mut SequenceState,
    ) {
        let Some(device) = message.device_id() else {
            return;
        };
        let device = device.as_str();
        self.bytes += MESSAGE_BYTES;
        // Looked up before inserting: most messages come from devices already in the batch, and
        // a key is then not allocated.
        let update = match self.devices.get_mut(device) {
            Some(update) => update,
            None => self
                .devices
                .entry(device.to_owned())
                .or_insert(DeviceUpdate {
                    seen: received,
                    online: true,
                    fw_version: None,
                }),
        };
        update.seen = update.seen.max(received);
        update.online = !matches!(message, Message::Status { online: false, .. });
        if let Some(seq) = message.seq() {
            if let Some((from, to)) = sequences.observe(device, seq) {
                self.gaps.push((device.to_owned(), from, to));
            }
            let last = sequences.last.get(device).copied().unwrap_or(seq) as i64;
            match self.sequences.get_mut(device) {
                Some(s) => *s = last,
                None => {
                    self.sequences.insert(device.to_owned(), last);
                }
            }
        }
        match message {
            Message::Hello { fw_version, .. } => update.fw_version = Some(fw_version.clone()),
            Message::CommandAck {
                cmd_id,
                result,
                detail,
                ..
            } => self.acks.push(CommandAnswer {
                cmd_id: *cmd_id,
                device: device.to_owned(),
                result: *result,
                detail: detail.clone(),
                at: received,
            }),
            Message::OtaStatus {
                cmd_id,
                state,
                progress_pct,
                ..
            } => self
                .ota
                .push((*cmd_id, device.to_owned(), state.clone(), *progress_pct)),
            Message::Events { events, .. } => {
                for event in events {
                    match event {
                        Ok(e) => {
                            self.bytes += EVENT_BYTES
                                + e.event_id.len()
                                + e.event_type.len()
                                + e.value_text.as_ref().map_or(0, String::len)
                                + e.meta.to_string().len();
                            self.events.push((e.clone(), received));
                        }
                        Err(rejection) => self
                            .rejected_events
                            .push((device.to_owned(), rejection.clone())),
                    }
                }
            }
            _ => {}
        }
    }

    /// Roughly what the batch holds in memory, for `registry.batch.max_bytes`.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether someone waits on this batch: a command answer, an OTA step, or events whose
    /// devices wait for their ACKs. Such a batch is applied at once instead of coalescing.
    pub fn is_awaited(&self) -> bool {
        !self.acks.is_empty()
            || !self.ota.is_empty()
            || !self.events.is_empty()
            || !self.rejected_events.is_empty()
    }

    /// Applies the batch and moves the cursor in one transaction: devices first (registered when
    /// unknown and `register_unknown`), then sequences, gap alerts, command answers, events.
    /// Returns, per stored event, whether it was new (`stored`) or already there (`duplicate`).
    pub async fn apply(
        &self,
        pool: &PgPool,
        (cursor_name, last): (&str, u64),
        register_unknown: bool,
    ) -> Result<Vec<(QsEvent, bool)>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        self.apply_devices(&mut tx, register_unknown).await?;
        self.apply_sequences(&mut tx).await?;
        self.apply_commands(&mut tx).await?;
        let outcomes = self.apply_events(&mut tx).await?;
        sqlx::query(
            "INSERT INTO collector_cursors (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(cursor_name)
        .bind(last as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Liveness, connection status and firmware of the batch's devices.
    async fn apply_devices(
        &self,
        tx: &mut sqlx::PgConnection,
        register_unknown: bool,
    ) -> Result<(), sqlx::Error> {
        let ids: Vec<&str> = self.devices.keys().map(String::as_str).collect();
        if register_unknown && !ids.is_empty() {
            sqlx::query(
                "INSERT INTO devices (device_id, device_name, status) \
                 SELECT id, id, 'unregistered' FROM unnest($1::text[]) AS id ON CONFLICT (device_id) DO NOTHING",
            )
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        if !ids.is_empty() {
            let seen: Vec<DateTime<Utc>> = ids.iter().map(|d| self.devices[*d].seen).collect();
            let online: Vec<bool> = ids.iter().map(|d| self.devices[*d].online).collect();
            let fw: Vec<Option<&str>> = ids
                .iter()
                .map(|d| self.devices[*d].fw_version.as_deref())
                .collect();
            sqlx::query(
                "UPDATE devices d SET last_seen = GREATEST(d.last_seen, v.seen), \
                   connection_status = CASE WHEN v.online THEN 'online' ELSE 'offline' END, \
                   fw_version = COALESCE(v.fw, d.fw_version) \
                 FROM unnest($1::text[], $2::timestamptz[], $3::bool[], $4::text[]) AS v(id, seen, online, fw) \
                 WHERE d.device_id = v.id",
            )
            .bind(&ids)
            .bind(&seen)
            .bind(&online)
            .bind(&fw)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// The last sequence number of each device, and the gaps found as alerts.
    async fn apply_sequences(&self, tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        if !self.sequences.is_empty() {
            let (devices, seqs): (Vec<&str>, Vec<i64>) =
                self.sequences.iter().map(|(d, s)| (d.as_str(), *s)).unzip();
            sqlx::query(
                "INSERT INTO device_sequences (device_id, last_seq) \
                 SELECT v.id, v.seq FROM unnest($1::text[], $2::bigint[]) AS v(id, seq) \
                 WHERE EXISTS (SELECT 1 FROM devices WHERE device_id = v.id) \
                 ON CONFLICT (device_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()",
            )
            .bind(&devices)
            .bind(&seqs)
            .execute(&mut *tx)
            .await?;
        }
        if !self.gaps.is_empty() {
            let devices: Vec<&str> = self.gaps.iter().map(|g| g.0.as_str()).collect();
            let messages: Vec<String> = self
                .gaps
                .iter()
                .map(|(_, from, to)| {
                    if from == to {
                        format!("message seq {from} never arrived")
                    } else {
                        format!("messages seq {from} to {to} never arrived")
                    }
                })
                .collect();
            insert_alerts(tx, &devices, "sequence_gap", "warning", &messages).await?;
        }
        Ok(())
    }

    /// Command answers and OTA progress.
    async fn apply_commands(&self, tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        for CommandAnswer {
            cmd_id,
            device,
            result,
            detail,
            at,
        } in &self.acks
        {
            sqlx::query("UPDATE commands SET status = $3, detail = $4, acked_at = $5 WHERE cmd_id = $1 AND device_id = $2")
                .bind(cmd_id)
                .bind(device)
                .bind(result.as_str())
                .bind(detail)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        for (cmd_id, device, state, progress) in &self.ota {
            sqlx::query("UPDATE commands SET ota_state = $3, ota_progress = $4 WHERE cmd_id = $1 AND device_id = $2")
                .bind(cmd_id)
                .bind(device)
                .bind(state)
                .bind(progress.map(i16::from))
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// `qs/v1` events, each with whether it is new (false: a duplicate).
    async fn apply_events(
        &self,
        tx: &mut sqlx::PgConnection,
    ) -> Result<Vec<(QsEvent, bool)>, sqlx::Error> {
        let mut outcomes = Vec::with_capacity(self.events.len());
        if !self.events.is_empty() {
            let e = &self.events;
            let stored: Vec<(String, String)> = sqlx::query_as(
                "INSERT INTO events (event_id, device_id, schema, event_type, value_num, value_text, unit, ts_device, ts_server, meta) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::float8[], $6::text[], $7::text[], \
                                      $8::timestamptz[], $9::timestamptz[], $10::jsonb[]) \
                 ON CONFLICT (device_id, event_id) DO NOTHING RETURNING device_id, event_id",
            )
            .bind(e.iter().map(|(x, _)| x.event_id.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.device_id.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.schema).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.event_type.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.value_num).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.value_text.as_deref()).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.unit.as_deref()).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.ts_device).collect::<Vec<_>>())
            .bind(e.iter().map(|(_, at)| *at).collect::<Vec<_>>())
            .bind(e.iter().map(|(x, _)| x.meta.clone()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            // A repeat of an id inside one batch: the first is stored, later ones are duplicates.
            let mut fresh: std::collections::HashSet<(String, String)> =
                stored.into_iter().collect();
            for (event, _) in e {
                let new =
                    fresh.remove(&(event.device_id.as_str().to_owned(), event.event_id.clone()));
                outcomes.push((event.clone(), new));
            }
        }
        Ok(outcomes)
    }
}

async fn insert_alerts(
    tx: &mut sqlx::PgConnection,
    devices: &[&str],
    alert_type: &str,
    severity: &str,
    messages: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alerts (device_id, alert_type, severity, message) \
         SELECT v.id, $2, $3, v.msg FROM unnest($1::text[], $4::text[]) AS v(id, msg) \
         WHERE EXISTS (SELECT 1 FROM devices WHERE device_id = v.id)",
    )
    .bind(devices)
    .bind(alert_type)
    .bind(severity)
    .bind(messages)
    .execute(tx)
    .await?;
    Ok(())
}
