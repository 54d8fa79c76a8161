#!/usr/bin/env python3
"""Synthetic customer-churn data for streamscore: customers, churn labels, and event streams.

The same generating process feeds model training (scripts/train_model.py), the compatibility
models (scripts/make_compat_models.py) and the load generator (scripts/produce_events.py), so
the events a worker scores look like the data its model was trained on. Everything is seeded
and deterministic: the same arguments give the same customers, labels and events, byte for byte.

Customer attributes (one row per customer; numpy, seeded by SeedSequence(seed)):
  engagement z         latent, z ~ N(0, 1); never a feature, it drives the usage attributes.
  tenure_months        int 0..72: round(72 * Beta(0.75, 1.15)), many new customers, a long tail.
  contract_type        MONTH_TO_MONTH=0 / ONE_YEAR=1 / TWO_YEAR=2, multinomial logit on tenure:
                       scores (0, -1.6 + 0.035 t, -2.6 + 0.055 t): long tenure, long contracts.
  num_products         int 1..6: 1 + Poisson(0.55 + 0.15 [contract != M2M]).
  monthly_charges      double 18..150: 22 + 16 * num_products + N(7, 12) - 4 [TWO_YEAR],
                       clipped, rounded to cents.
  total_charges        double: monthly_charges * max(tenure, U(0, 1)) * U(0.88, 1.04), cents.
  has_autopay          boolean: Bernoulli(0.32 / 0.55 / 0.70) by contract type.
  payment_failures_90d int: Poisson(0.08 + 0.35 [no autopay] + 0.004 max(monthly - 70, 0)).
  logins_30d           int: Poisson(exp(2.1 + 0.55 z)).
  days_since_last_login long: 0 if a login happened "today" (prob logins/(logins + 4) * 0.35);
                       else Geometric with mean 30/(logins+1), +Exponential(25) when logins == 0;
                       capped at 180.
  support_calls_30d    int: Poisson(0.25 + 0.45 payment_failures + 0.25 max(-z, 0)
                       + 0.3 [tenure < 6]).
  data_usage_gb        float: LogNormal(1.2 + 0.35 z + 0.25 ln(num_products), 0.7), rounded to 0.1.

Missing attributes: some customers have attributes their systems never report (XGBoost treats
them as missing). Each attribute is unknown independently with a fixed rate (MISSING_RATE:
1-6 %). The training matrix has NaN there; the event stream never carries such an attribute.

Churn label: y ~ Bernoulli(sigmoid(logit)), then 1 % of labels flipped (label noise), where
  logit = b0 + 2.80 [M2M] - 3.00 [TWO_YEAR] - 1.40 ln(1 + tenure)
        + p (0.045 (monthly - 70) + 0.031 (monthly - 70) [M2M])         # price x contract
        + s (2.05 ln(1 + support) + 1.40 ln(1 + support) [tenure < 12])   # support x new
        - 0.90 ln(1 + logins) + 0.063 min(days_since_last_login, 60)
        + 1.40 payment_failures (1 - 0.5 autopay) - 1.10 autopay          # failures x autopay
        - 0.75 (num_products - 1) - 0.35 ln(1 + data_usage)
        - 0.55 z + u,   u ~ N(0, 0.6) unobserved (noise).
  b0 = 4.00. p = 1 + drift, s = 1 + drift / 2: drift = 0 is the base process; drift > 0 is a
  later cohort that is more price-sensitive (used to train the candidate model 1.1.0).
  The latent engagement z, the noise u and the flipped labels cap what any model can reach:
  a good model's held-out ROC-AUC is about 0.93, the positive rate about 30 %.

Event stream (events(n, customers, seed)): customers C000001..C<M> (initial state = the customer
rows above with the same seed), each with an activity weight ~ LogNormal(0, 1). Each event picks
a customer by weight. A customer's first event is a PROFILE_UPDATE (75 %) or a LOGIN/USAGE/PAYMENT
and carries each known attribute with probability 0.92 (snapshot). Later events are LOGIN 38 %,
USAGE 25 %, PAYMENT 15 %, PROFILE_UPDATE 10 %, SUPPORT_CALL 8 %, PLAN_CHANGE 4 %; each updates
the customer's state and carries what its source knows:
  LOGIN          logins_30d + 1, days_since_last_login = 0
  PAYMENT        total_charges (+ monthly charge, unless the payment failed), payment_failures_90d,
                 has_autopay; monthly_charges half the time
  SUPPORT_CALL   support_calls_30d + 1; days_since_last_login a third of the time
  PLAN_CHANGE    contract_type, num_products, monthly_charges; has_autopay a quarter of the time
  USAGE          data_usage_gb (grows); days_since_last_login and logins_30d sometimes
  PROFILE_UPDATE tenure_months, contract_type, num_products, has_autopay; others sometimes
Each carried attribute is null instead with probability 0.03. event_id is a UUID4 drawn from the
seeded generator; event_time starts at start_ms (default 2025-01-01T00:00:00Z) and advances by
Exponential(mean 40 ms) per event. A shorter stream is a prefix of a longer one (same seed).

CLI: churn_data.py events --count N --customers M [--seed S]   (JSON lines on stdout)
     churn_data.py customers --count N [--seed S] [--labels]    (JSON lines on stdout)
     churn_data.py stats [--count N] [--seed S]                 (positive rate, oracle AUC)
"""
import argparse
import datetime
import io
import itertools
import json
import random
import struct
import sys

import numpy as np

FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract_type",
    "support_calls_30d",
    "logins_30d",
    "payment_failures_90d",
    "data_usage_gb",
    "has_autopay",
    "num_products",
    "days_since_last_login",
]
CONTRACT_TYPES = ["MONTH_TO_MONTH", "ONE_YEAR", "TWO_YEAR"]
EVENT_TYPES = ["LOGIN", "PAYMENT", "SUPPORT_CALL", "PLAN_CHANGE", "USAGE", "PROFILE_UPDATE"]
# Later events: how often each type occurs.
EVENT_TYPE_WEIGHTS = [0.38, 0.15, 0.08, 0.04, 0.25, 0.10]
# Share of customers for whom an attribute is never known.
MISSING_RATE = {
    "tenure_months": 0.01,
    "monthly_charges": 0.01,
    "total_charges": 0.02,
    "contract_type": 0.01,
    "support_calls_30d": 0.02,
    "logins_30d": 0.02,
    "payment_failures_90d": 0.02,
    "data_usage_gb": 0.05,
    "has_autopay": 0.03,
    "num_products": 0.01,
    "days_since_last_login": 0.06,
}
LABEL_FLIP_RATE = 0.01
NOISE_SD = 0.6
INTERCEPT = 4.00
DEFAULT_START_MS = 1735689600000  # 2025-01-01T00:00:00Z
MEAN_GAP_MS = 40.0
DEFAULT_SCHEMA = "schemas/customer_event.avsc"

# Attribute kinds, for turning numpy rows into event values.
_INT_FIELDS = {"tenure_months", "support_calls_30d", "logins_30d", "payment_failures_90d",
               "num_products", "days_since_last_login"}


def _rngs(seed, n):
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def customers(n, seed=0):
    """n customers as a dict of numpy columns (all attributes, no missing values) plus the
    latent engagement 'z' and a boolean 'known' matrix (n x 11, False = attribute unknown)."""
    rng, miss_rng = _rngs(seed, 2)
    z = rng.standard_normal(n)
    tenure = np.rint(72 * rng.beta(0.75, 1.15, n)).astype(np.int64)
    scores = np.stack([np.zeros(n), -1.6 + 0.035 * tenure, -2.6 + 0.055 * tenure], axis=1)
    p = np.exp(scores)
    p /= p.sum(axis=1, keepdims=True)
    u = rng.random(n)
    contract = (u[:, None] > np.cumsum(p, axis=1)).sum(axis=1).clip(0, 2).astype(np.int64)
    num_products = np.minimum(1 + rng.poisson(0.55 + 0.15 * (contract != 0)), 6).astype(np.int64)
    monthly = 22 + 16 * num_products + rng.normal(7.0, 12.0, n) - 4.0 * (contract == 2)
    monthly = np.round(np.clip(monthly, 18.0, 150.0), 2)
    months_billed = np.maximum(tenure, rng.random(n))
    total = np.round(monthly * months_billed * rng.uniform(0.88, 1.04, n), 2)
    autopay = rng.random(n) < np.array([0.32, 0.55, 0.70])[contract]
    pay_fail = rng.poisson(0.08 + 0.35 * (~autopay) + 0.004 * np.maximum(monthly - 70, 0))
    logins = rng.poisson(np.exp(2.1 + 0.55 * z))
    today = rng.random(n) < 0.35 * logins / (logins + 4.0)
    mean_gap = 30.0 / (logins + 1.0)
    dsl = rng.geometric(1.0 / (1.0 + mean_gap)) - 1 + np.where(
        logins == 0, rng.exponential(25.0, n), 0.0)
    dsl = np.where(today, 0, np.minimum(np.rint(dsl), 180)).astype(np.int64)
    support = rng.poisson(0.25 + 0.45 * pay_fail + 0.25 * np.maximum(-z, 0) + 0.3 * (tenure < 6))
    usage = np.round(rng.lognormal(1.2 + 0.35 * z + 0.25 * np.log(num_products), 0.7), 1)
    known = np.stack([miss_rng.random(n) >= MISSING_RATE[f] for f in FEATURES], axis=1)
    return {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "contract_type": contract,
        "support_calls_30d": support.astype(np.int64),
        "logins_30d": logins.astype(np.int64),
        "payment_failures_90d": pay_fail.astype(np.int64),
        "data_usage_gb": usage,
        "has_autopay": autopay,
        "num_products": num_products,
        "days_since_last_login": dsl,
        "z": z,
        "known": known,
    }


def churn_logit(c, drift=0.0):
    """The churn log-odds of customers c (from customers()), without the noise term."""
    m2m = (c["contract_type"] == 0).astype(float)
    two = (c["contract_type"] == 2).astype(float)
    mc = c["monthly_charges"] - 70.0
    ls = np.log1p(c["support_calls_30d"])
    ap = c["has_autopay"].astype(float)
    price = 1.0 + drift
    supp = 1.0 + drift / 2.0
    return (INTERCEPT + 2.80 * m2m - 3.00 * two - 1.40 * np.log1p(c["tenure_months"])
            + price * (0.045 * mc + 0.031 * mc * m2m)
            + supp * (2.05 * ls + 1.40 * ls * (c["tenure_months"] < 12))
            - 0.90 * np.log1p(c["logins_30d"])
            + 0.063 * np.minimum(c["days_since_last_login"], 60)
            + 1.40 * c["payment_failures_90d"] * (1 - 0.5 * ap) - 1.10 * ap
            - 0.75 * (c["num_products"] - 1) - 0.35 * np.log1p(c["data_usage_gb"])
            - 0.55 * c["z"])


def churn_labels(c, seed=0, drift=0.0):
    """Noisy churn labels (0/1 int array) for customers c."""
    (rng,) = _rngs([seed, 1], 1)
    logit = churn_logit(c, drift) + rng.normal(0.0, NOISE_SD, len(c["z"]))
    y = rng.random(len(logit)) < 1.0 / (1.0 + np.exp(-logit))
    flip = rng.random(len(y)) < LABEL_FLIP_RATE
    return (y ^ flip).astype(np.int64)


def feature_matrix(c):
    """float32 matrix (n x 11, model feature order) with NaN for unknown attributes."""
    x = np.stack([np.asarray(c[f], dtype=np.float32) for f in FEATURES], axis=1)
    x[~c["known"]] = np.nan
    return x


def training_set(n, seed=0, drift=0.0):
    """(X float32 n x 11 with NaN, y int 0/1) from the process described above."""
    c = customers(n, seed)
    return feature_matrix(c), churn_labels(c, seed, drift)


# ---------------------------------------------------------------------------------------
# Events


def _value(field, v):
    if field == "contract_type":
        return CONTRACT_TYPES[int(v)]
    if field == "has_autopay":
        return bool(v)
    if field in _INT_FIELDS:
        return int(v)
    if field == "data_usage_gb":
        return round(float(v), 1)
    return round(float(v), 2)


class _Customer:
    __slots__ = ("cid", "state", "known", "seen")

    def __init__(self, cid, state, known):
        self.cid = cid
        self.state = state
        self.known = known
        self.seen = False


def _first_event_type(r):
    u = r.random()
    if u < 0.75:
        return "PROFILE_UPDATE"
    return ("LOGIN", "USAGE", "PAYMENT")[int((u - 0.75) / 0.25 * 3) % 3]


def _update(r, cust, etype):
    """Advance cust's state for an event of etype; return the fields the event carries."""
    s = cust.state
    if etype == "LOGIN":
        s["logins_30d"] += 1
        s["days_since_last_login"] = 0
        return ["logins_30d", "days_since_last_login"]
    if etype == "PAYMENT":
        fail_p = 0.02 if s["has_autopay"] else 0.08
        if r.random() < fail_p:
            s["payment_failures_90d"] += 1
        else:
            s["total_charges"] = round(s["total_charges"] + s["monthly_charges"], 2)
        if r.random() < 0.03:
            s["has_autopay"] = not s["has_autopay"]
        carried = ["total_charges", "payment_failures_90d", "has_autopay"]
        if r.random() < 0.5:
            carried.append("monthly_charges")
        return carried
    if etype == "SUPPORT_CALL":
        s["support_calls_30d"] += 1
        return ["support_calls_30d"] + (["days_since_last_login"] if r.random() < 0.33 else [])
    if etype == "PLAN_CHANGE":
        s["contract_type"] = r.choice([c for c in CONTRACT_TYPES if c != s["contract_type"]])
        s["num_products"] = min(6, max(1, s["num_products"] + r.choice((-1, 1, 1))))
        s["monthly_charges"] = round(min(150.0, max(18.0, 22 + 16 * s["num_products"]
                                                    + r.gauss(7.0, 12.0))), 2)
        carried = ["contract_type", "num_products", "monthly_charges"]
        if r.random() < 0.25:
            carried.append("has_autopay")
        return carried
    if etype == "USAGE":
        s["data_usage_gb"] = round(s["data_usage_gb"] + r.expovariate(2.0), 1)
        carried = ["data_usage_gb"]
        if r.random() < 0.4:
            carried.append("days_since_last_login")
        if r.random() < 0.3:
            carried.append("logins_30d")
        return carried
    # PROFILE_UPDATE
    if r.random() < 0.1:
        s["tenure_months"] = min(72, s["tenure_months"] + 1)
    carried = ["tenure_months", "contract_type", "num_products", "has_autopay"]
    for f in ("monthly_charges", "total_charges"):
        if r.random() < 0.3:
            carried.append(f)
    return carried


def events(n, customers_n, seed=0, start_ms=DEFAULT_START_MS):
    """Yield n event dicts (all 15 schema fields; attributes not carried are None) about
    customers_n customers; n=None yields forever. Deterministic for a given
    (n, customers_n, seed, start_ms): a shorter stream is a prefix of a longer one."""
    if customers_n < 1:
        raise ValueError("customers_n must be >= 1")
    c = customers(customers_n, seed)
    (wrng,) = _rngs([seed, 2], 1)
    weights = np.cumsum(wrng.lognormal(0.0, 1.0, customers_n))
    weights /= weights[-1]
    r = random.Random(seed * 1_000_003 + 7)
    width = max(6, len(str(customers_n)))
    pool = {}
    t = float(start_ms)
    picks_block = None
    for i in itertools.count() if n is None else range(n):
        if i % 4096 == 0:
            # Pick customers in blocks: vectorised, still one deterministic sequence.
            picks_block = np.searchsorted(weights, wrng.random(4096), side="right")
        idx = min(int(picks_block[i % 4096]), customers_n - 1)
        cust = pool.get(idx)
        if cust is None:
            state = {f: _value(f, c[f][idx]) for f in FEATURES}
            cust = _Customer("C%0*d" % (width, idx + 1), state, c["known"][idx].tolist())
            pool[idx] = cust
        if not cust.seen:
            etype = _first_event_type(r)
            if etype != "PROFILE_UPDATE":
                _update(r, cust, etype)
            carried = [f for f in FEATURES if r.random() < 0.92]
            cust.seen = True
        else:
            etype = r.choices(EVENT_TYPES, cum_weights=_CUM_TYPE_WEIGHTS)[0]
            carried = _update(r, cust, etype)
        rec = {
            "event_id": _uuid4(r.getrandbits(128)),
            "customer_id": cust.cid,
            "event_time": int(t),
            "event_type": etype,
        }
        carried = set(carried)
        for j, f in enumerate(FEATURES):
            if f in carried and cust.known[j] and r.random() >= 0.03:
                rec[f] = cust.state[f]
            else:
                rec[f] = None
        yield rec
        t += r.expovariate(1.0 / MEAN_GAP_MS)


_CUM_TYPE_WEIGHTS = list(np.cumsum(EVENT_TYPE_WEIGHTS))


def _uuid4(bits):
    """str(uuid.UUID(int=bits, version=4)), without the uuid module's overhead."""
    h = "%032x" % ((bits & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48))
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


# ---------------------------------------------------------------------------------------
# Features of an event (the contract's mapping), and the feature-vector hash


def feature_vector(record, features=FEATURES):
    """float32 values of an event record in model order; None/absent -> NaN."""
    out = np.full(len(features), np.nan, dtype=np.float32)
    for j, f in enumerate(features):
        v = record.get(f)
        if v is None:
            continue
        if f == "contract_type":
            v = CONTRACT_TYPES.index(v) if isinstance(v, str) else v
        out[j] = np.float32(float(v))
    return out


def feature_hash(vec):
    """FNV-1a 64 over the little-endian float32 bytes, NaN -> 0x7fc00000; 16 hex digits."""
    h = 0xCBF29CE484222325
    for v in np.asarray(vec, dtype=np.float32):
        b = struct.pack("<I", 0x7FC00000) if np.isnan(v) else struct.pack("<f", float(v))
        for byte in b:
            h ^= byte
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


# ---------------------------------------------------------------------------------------
# Avro encoding (fastavro is imported lazily: training needs only numpy and xgboost)


def load_schema(path_or_schema):
    """A parsed fastavro schema from a path, a JSON string or a dict."""
    import fastavro

    s = path_or_schema
    if isinstance(s, str):
        if s.lstrip().startswith("{"):
            s = json.loads(s)
        else:
            with open(s, encoding="utf-8") as fh:
                s = json.load(fh)
    if isinstance(s, dict) and "__fastavro_parsed" in s:
        return s
    return fastavro.parse_schema(s)


def project(record, schema):
    """The record shaped for a writer schema: fields it lacks are dropped, fields it adds
    take their default (a field without default that the record lacks is an error)."""
    out = {}
    for f in schema["fields"]:
        name = f["name"]
        if name in record:
            out[name] = record[name]
        elif "default" in f:
            out[name] = f["default"]
        else:
            raise KeyError("record has no field %r and the schema gives no default" % name)
    return out


def encode_event(record, schema, framing="raw", schema_id=1):
    """Avro bytes of record with writer schema (path, JSON or parsed): 'raw' = body only,
    'confluent' = 0x00 + 4-byte big-endian schema id + body."""
    import fastavro

    schema = load_schema(schema)
    buf = io.BytesIO()
    if framing == "confluent":
        buf.write(b"\x00" + struct.pack(">I", schema_id))
    elif framing != "raw":
        raise ValueError("framing must be raw or confluent, not %r" % framing)
    fastavro.schemaless_writer(buf, schema, project(record, schema))
    return buf.getvalue()


def decode_event(data, writer_schema, reader_schema=None, framing="raw"):
    """(schema_id or None, record) decoded from bytes made by encode_event; timestamp
    fields come back as int milliseconds, as the generator makes them."""
    import fastavro

    schema_id = None
    if framing == "confluent":
        if len(data) < 5 or data[0] != 0:
            raise ValueError("not Confluent-framed")
        schema_id = struct.unpack(">I", data[1:5])[0]
        data = data[5:]
    w = load_schema(writer_schema)
    r = load_schema(reader_schema) if reader_schema is not None else None
    rec = fastavro.schemaless_reader(io.BytesIO(data), w, r)
    for k, v in rec.items():
        if isinstance(v, datetime.datetime):
            rec[k] = _epoch_ms(v)
    return schema_id, rec


def _epoch_ms(t):
    delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return delta.days * 86400000 + delta.seconds * 1000 + delta.microseconds // 1000


# ---------------------------------------------------------------------------------------
# CLI


def _stats(n, seed):
    c = customers(n, seed)
    y = churn_labels(c, seed)
    logit = churn_logit(c)
    order = np.argsort(logit, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(1, n + 1)
    pos = y == 1
    auc = (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())
    x = feature_matrix(c)
    return {
        "n": n,
        "seed": seed,
        "positive_rate": round(float(y.mean()), 4),
        "oracle_auc_without_noise": round(float(auc), 4),
        "missing_rate": {f: round(float(np.isnan(x[:, j]).mean()), 4)
                         for j, f in enumerate(FEATURES)},
        "mean": {f: round(float(np.nanmean(x[:, j])), 3) for j, f in enumerate(FEATURES)},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="Synthetic churn data (see the module docstring).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("events", help="JSON lines of events")
    e.add_argument("--count", type=int, default=10)
    e.add_argument("--customers", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--start-ms", type=int, default=DEFAULT_START_MS)
    cu = sub.add_parser("customers", help="JSON lines of customers (unknown attributes null)")
    cu.add_argument("--count", type=int, default=10)
    cu.add_argument("--seed", type=int, default=0)
    cu.add_argument("--labels", action="store_true", help="add the churn label")
    st = sub.add_parser("stats", help="summary of the process")
    st.add_argument("--count", type=int, default=50000)
    st.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = sys.stdout
    if a.cmd == "events":
        for rec in events(a.count, a.customers, a.seed, a.start_ms):
            out.write(json.dumps(rec) + "\n")
    elif a.cmd == "customers":
        c = customers(a.count, a.seed)
        y = churn_labels(c, a.seed) if a.labels else None
        width = max(6, len(str(a.count)))
        for i in range(a.count):
            row = {"customer_id": "C%0*d" % (width, i + 1)}
            for j, f in enumerate(FEATURES):
                row[f] = _value(f, c[f][i]) if c["known"][i, j] else None
            if y is not None:
                row["churn"] = int(y[i])
            out.write(json.dumps(row) + "\n")
    else:
        out.write(json.dumps(_stats(a.count, a.seed), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
