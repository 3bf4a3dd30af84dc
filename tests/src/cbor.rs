//! A small CBOR codec (RFC 8949) for the stand-in's Smithy RPC v2 CBOR
//! protocol (CloudWatch's SDK speaks it; moto speaks CloudWatch's awsJson
//! 1.0): CBOR ↔ `serde_json::Value`, with timestamps (tag 1) as epoch
//! seconds.

use serde_json::{Map, Number, Value};

/// Decodes one CBOR item. Tag 1 (epoch time) becomes its number; other tags
/// are dropped; byte strings become base64-free lossy text.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut d = Dec { b: bytes, i: 0 };
    let v = d.item()?;
    Ok(v)
}

struct Dec<'a> {
    b: &'a [u8],
    i: usize,
}

const BREAK: u8 = 0xff;

impl Dec<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.i).ok_or("cbor: truncated")?;
        self.i += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.i.checked_add(n).ok_or("cbor: length overflow")?;
        let s = self.b.get(self.i..end).ok_or("cbor: truncated")?;
        self.i = end;
        Ok(s)
    }

    fn arg(&mut self, info: u8) -> Result<Option<u64>, String> {
        Ok(Some(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().map_err(|_| "cbor")?,
            )),
            26 => u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().map_err(|_| "cbor")?,
            )),
            27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| "cbor")?),
            31 => return Ok(None),
            _ => return Err(format!("cbor: bad additional info {info}")),
        }))
    }

    fn at_break(&mut self) -> bool {
        if self.b.get(self.i) == Some(&BREAK) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn text(&mut self, info: u8) -> Result<String, String> {
        match self.arg(info)? {
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| "cbor: length")?;
                Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
            }
            None => {
                let mut out = String::new();
                while !self.at_break() {
                    let h = self.byte()?;
                    out.push_str(&self.text(h & 0x1f)?);
                }
                Ok(out)
            }
        }
    }

    fn item(&mut self) -> Result<Value, String> {
        let head = self.byte()?;
        let (major, info) = (head >> 5, head & 0x1f);
        Ok(match major {
            0 => Value::from(self.arg(info)?.ok_or("cbor: indefinite int")?),
            1 => {
                let n = self.arg(info)?.ok_or("cbor: indefinite int")?;
                Value::from(-1 - i64::try_from(n).map_err(|_| "cbor: int overflow")?)
            }
            2 | 3 => Value::String(self.text(info)?),
            4 => {
                let mut items = Vec::new();
                match self.arg(info)? {
                    Some(n) => {
                        for _ in 0..n {
                            items.push(self.item()?);
                        }
                    }
                    None => {
                        while !self.at_break() {
                            items.push(self.item()?);
                        }
                    }
                }
                Value::Array(items)
            }
            5 => {
                let mut map = Map::new();
                let mut entry = |d: &mut Self| -> Result<(), String> {
                    let k = match d.item()? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    let v = d.item()?;
                    map.insert(k, v);
                    Ok(())
                };
                match self.arg(info)? {
                    Some(n) => {
                        for _ in 0..n {
                            entry(self)?;
                        }
                    }
                    None => {
                        while !self.at_break() {
                            entry(self)?;
                        }
                    }
                }
                Value::Object(map)
            }
            6 => {
                self.arg(info)?;
                self.item()?
            }
            _ => match info {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 | 23 => Value::Null,
                25 => {
                    let h = u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| "cbor")?);
                    float(half(h))
                }
                26 => float(f64::from(f32::from_be_bytes(
                    self.take(4)?.try_into().map_err(|_| "cbor")?,
                ))),
                27 => float(f64::from_be_bytes(
                    self.take(8)?.try_into().map_err(|_| "cbor")?,
                )),
                _ => return Err(format!("cbor: unsupported simple value {info}")),
            },
        })
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn half(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 => {
            if mant == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => (mant + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if h & 0x8000 != 0 { -v } else { v }
}

/// Encodes `v`. Members named `Timestamps` or ending in `Timestamp` become
/// tag 1 (epoch seconds, as a double); members named `Values`, `Threshold`
/// or `Value` are doubles; other numbers are integers when whole.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    enc(&mut out, v, Kind::Plain);
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Plain,
    Double,
    Timestamp,
}

fn kind_of(key: &str) -> Kind {
    if key == "Timestamps" || key.ends_with("Timestamp") {
        Kind::Timestamp
    } else if matches!(
        key,
        "Values" | "Threshold" | "Value" | "Sum" | "Average" | "Minimum" | "Maximum"
    ) {
        Kind::Double
    } else {
        Kind::Plain
    }
}

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | u8::try_from(n).unwrap_or(0));
    } else if let Ok(b) = u8::try_from(n) {
        out.push(m | 24);
        out.push(b);
    } else if let Ok(s) = u16::try_from(n) {
        out.push(m | 25);
        out.extend_from_slice(&s.to_be_bytes());
    } else if let Ok(w) = u32::try_from(n) {
        out.push(m | 26);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn enc(out: &mut Vec<u8>, v: &Value, kind: Kind) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if kind == Kind::Timestamp {
                out.push(0xc1);
            }
            match (kind, n.as_u64(), n.as_i64()) {
                (Kind::Plain, Some(u), _) => head(out, 0, u),
                (Kind::Plain, None, Some(i)) if i < 0 => head(out, 1, i.unsigned_abs() - 1),
                _ => {
                    out.push(0xfb);
                    out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_be_bytes());
                }
            }
        }
        Value::String(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            for i in items {
                enc(out, i, kind);
            }
        }
        Value::Object(map) => {
            head(out, 5, map.len() as u64);
            for (k, item) in map {
                head(out, 3, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                enc(out, item, kind_of(k));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        let v = json!({"Id": "p99", "Period": 60, "Neg": -5, "Values": [1.5, 2.0], "Ok": true, "Nothing": null, "List": [{"A": "b"}]});
        let back = decode(&encode(&v)).expect("decodes");
        assert_eq!(back, v);
        let ts = decode(&encode(&json!({"Timestamps": [1_800_000_000.0]}))).expect("ts");
        assert_eq!(ts, json!({"Timestamps": [1_800_000_000.0]}));
        // Indefinite-length map and text, a half float.
        let bytes = [0xbf, 0x7f, 0x61, b'a', 0xff, 0xf9, 0x3e, 0x00, 0xff];
        assert_eq!(decode(&bytes).expect("indefinite"), json!({"a": 1.5}));
    }
}
