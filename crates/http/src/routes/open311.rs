//! Open311 GeoReport v2 at `/open311/v2/` (<http://wiki.open311.org/GeoReport_v2>), plus
//! mySociety's `servicerequestupdates` extension.
//!
//! | path | what |
//! |---|---|
//! | `discovery.{fmt}` | the endpoint's self-description |
//! | `services.{fmt}` | one service per case category (`service_code` = category code) |
//! | `services/{code}.{fmt}` | the service definition: extra attributes a client may send |
//! | `POST requests.{fmt}` | creates a case (channel `open311`), `api_key` required |
//! | `GET requests.{fmt}` | cases by id list, service code, date range, open/closed |
//! | `requests/{id}.{fmt}` | one case; `service_request_id` is the case number |
//! | `tokens/{token}.{fmt}` | cases are created at once, so a token is the case number |
//! | `servicerequestupdates.{fmt}` | timeline steps as updates, `api_key` required |
//!
//! `fmt` is `json` or `xml`. Errors follow the spec, not the `/api/v1` contract: 404 for an
//! unknown resource (service code, request, token, jurisdiction), 403 for a missing or bad
//! `api_key`, 400 for anything else, with `[{"code", "description"}]` (JSON) or
//! `<errors><error>…</error></errors>` (XML). Empty parameters count as absent.
//!
//! Nothing personal leaves through the GET endpoints: no reporter name, phone, e-mail,
//! account or device id, and digit runs that look like phone or ID numbers in free text are
//! masked. Datetimes are ISO-8601 in the deployment's time zone (`+08:00`).

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use gridloop_domain::calendar::Calendar;
use gridloop_domain::case::{Case, Channel, Difficulty, Location, NewCase, Reporter, Status};
use gridloop_domain::category::CATEGORIES;
use gridloop_domain::privacy::mask_phone;
use gridloop_domain::role::Actor;
use gridloop_domain::timeline::Event;
use gridloop_store::{ApiKey, CaseFilter, CaseSort, StoreError};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::token_hash;
use crate::error::ApiError;
use crate::routes::cases::{idempotency, store_new_case};

/// Form bodies carry at most 4,000 characters of description and a few attributes.
pub const BODY_LIMIT: usize = 256 * 1024;
/// The spec's default and our maximum number of requests in one answer.
pub const MAX_LIMIT: usize = 1000;
/// `start_date` and `end_date` may be at most this far apart.
pub const MAX_SPAN_DAYS: i64 = 90;
/// The spec's limit on `description`.
pub const DESCRIPTION_MAX: usize = 4000;
/// When this interface last changed (discovery's `changeset`).
const CHANGESET: &str = "2026-11-01T00:00:00+08:00";

pub fn router() -> Router<AppState> {
    let v2 = Router::new()
        .route("/{file}", any(top))
        .route("/services/{file}", any(service_definition))
        .route("/requests/{file}", any(one_request))
        .route("/tokens/{file}", any(token))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    Router::new().nest("/open311/v2", v2)
}

// --- formats, errors, documents ------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// An Open311 error: the status and its description.
#[derive(Debug)]
struct Fail {
    status: StatusCode,
    description: String,
}

impl Fail {
    fn bad(description: impl Into<String>) -> Fail {
        Fail {
            status: StatusCode::BAD_REQUEST,
            description: description.into(),
        }
    }

    fn not_found(description: impl Into<String>) -> Fail {
        Fail {
            status: StatusCode::NOT_FOUND,
            description: description.into(),
        }
    }

    fn forbidden(description: impl Into<String>) -> Fail {
        Fail {
            status: StatusCode::FORBIDDEN,
            description: description.into(),
        }
    }

    fn respond(self, fmt: Format) -> Response {
        let body = Out::List(
            "error",
            vec![Out::Obj(vec![
                ("code", Out::Int(i64::from(self.status.as_u16()))),
                ("description", Out::Str(self.description)),
            ])],
        );
        let mut resp = render(fmt, "errors", &body);
        *resp.status_mut() = self.status;
        resp
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Fail {
        match e {
            ApiError::NotFound(m) => Fail::not_found(m),
            ApiError::Unauthorized(m) | ApiError::Forbidden(m) => Fail::forbidden(m),
            ApiError::TooManyRequests(m) => Fail {
                status: StatusCode::TOO_MANY_REQUESTS,
                description: m,
            },
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error (open311)");
                Fail {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    description: "internal error; see the server log".into(),
                }
            }
            other => Fail::bad(other.to_string()),
        }
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        ApiError::from(e).into()
    }
}

impl From<gridloop_domain::DomainError> for Fail {
    fn from(e: gridloop_domain::DomainError) -> Fail {
        ApiError::from(e).into()
    }
}

type Res<T> = Result<T, Fail>;

/// A response document, written once and rendered as JSON or XML.
#[derive(Debug, Clone)]
enum Out {
    Null,
    Str(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// Fields in the order the spec lists them (XML keeps the order).
    Obj(Vec<(&'static str, Out)>),
    /// A JSON array; in XML, one element per item named by the tag, inside the parent's.
    List(&'static str, Vec<Out>),
}

impl Out {
    fn opt(s: Option<String>) -> Out {
        s.map_or(Out::Null, Out::Str)
    }

    fn str(s: &str) -> Out {
        Out::Str(s.to_string())
    }

    fn to_json(&self) -> Value {
        match self {
            Out::Null => Value::Null,
            Out::Str(s) => Value::String(s.clone()),
            Out::Int(i) => json!(i),
            Out::Num(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Out::Bool(b) => Value::Bool(*b),
            Out::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), v.to_json()))
                    .collect::<Map<_, _>>(),
            ),
            Out::List(_, items) => Value::Array(items.iter().map(Out::to_json).collect()),
        }
    }

    fn write_xml(&self, tag: &str, out: &mut String) {
        out.push('<');
        out.push_str(tag);
        out.push('>');
        match self {
            Out::Null => {}
            Out::Str(s) => escape_into(s, out),
            Out::Int(i) => out.push_str(&i.to_string()),
            Out::Num(f) if f.is_finite() => out.push_str(&f.to_string()),
            Out::Num(_) => {}
            Out::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Out::Obj(fields) => {
                for (k, v) in fields {
                    v.write_xml(k, out);
                }
            }
            Out::List(item, items) => {
                for v in items {
                    v.write_xml(item, out);
                }
            }
        }
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
}

/// Escapes text for XML and drops the characters XML 1.0 cannot carry at all.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

fn render(fmt: Format, root: &str, doc: &Out) -> Response {
    match fmt {
        Format::Json => {
            let body = serde_json::to_vec(&doc.to_json()).unwrap_or_else(|_| b"[]".to_vec());
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                )],
                body,
            )
                .into_response()
        }
        Format::Xml => {
            let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
            doc.write_xml(root, &mut body);
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/xml; charset=utf-8"),
                )],
                body,
            )
                .into_response()
        }
    }
}

/// `services.json` → (`services`, JSON). No suffix → 404 (no such resource); an unknown
/// one → 400 (a format we do not speak). Errors about the suffix itself answer in JSON.
fn split_format(file: &str) -> Result<(&str, Format), Fail> {
    let Some((name, ext)) = file.rsplit_once('.') else {
        return Err(Fail::not_found(format!(
            "no such resource {file}: add .json or .xml"
        )));
    };
    match ext.to_ascii_lowercase().as_str() {
        "json" => Ok((name, Format::Json)),
        "xml" => Ok((name, Format::Xml)),
        _ => Err(Fail::bad(format!(
            "unsupported format .{ext}: use .json or .xml"
        ))),
    }
}

/// The path's last segment, split into name and format. Its errors answer in JSON.
fn file_of(path: Result<Path<String>, PathRejection>) -> Res<(String, Format)> {
    let file = match path {
        Ok(Path(f)) => f,
        Err(e) => return Err(Fail::bad(format!("bad path: {e}"))),
    };
    let (name, fmt) = split_format(&file)?;
    Ok((name.to_string(), fmt))
}

fn method_fail(allowed: &str) -> Fail {
    Fail {
        status: StatusCode::METHOD_NOT_ALLOWED,
        description: format!("method not allowed here; use {allowed}"),
    }
}

fn is_get(m: &Method) -> bool {
    m == Method::GET || m == Method::HEAD
}

// --- parameters ----------------------------------------------------------------------------

/// Query and form parameters in order (form body first). Empty values count as absent.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>, body: Option<&[u8]>) -> Res<Params> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(b) = body {
            let form: Vec<(String, String)> = serde_urlencoded::from_bytes(b)
                .map_err(|e| Fail::bad(format!("malformed form body: {e}")))?;
            pairs.extend(form);
        }
        if let Some(q) = query {
            let query: Vec<(String, String)> = serde_urlencoded::from_str(q)
                .map_err(|e| Fail::bad(format!("malformed query string: {e}")))?;
            pairs.extend(query);
        }
        pairs.retain(|(_, v)| !v.trim().is_empty());
        Ok(Params(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A trimmed single-line value, at most `max` characters.
    fn short(&self, name: &str, max: usize) -> Res<Option<String>> {
        match self.get(name).map(str::trim) {
            None => Ok(None),
            Some(v) if v.chars().count() > max => Err(Fail::bad(format!(
                "{name} must be at most {max} characters"
            ))),
            Some(v) => Ok(Some(v.to_string())),
        }
    }

    fn limit(&self) -> Res<usize> {
        match self.get("limit") {
            None => Ok(MAX_LIMIT),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(Fail::bad(format!("limit must be 1–{MAX_LIMIT}"))),
            },
        }
    }
}

/// The calling client's key: `None` when absent and not required; 403 when required and
/// absent, or given and unknown.
async fn api_client(st: &AppState, p: &Params, required: bool) -> Res<Option<ApiKey>> {
    match p.get("api_key") {
        None if required => Err(Fail::forbidden("api_key is required")),
        None => Ok(None),
        Some(key) => match st.store.api_key_by_hash(&token_hash(key.trim())).await? {
            Some(k) => Ok(Some(k)),
            None => Err(Fail::forbidden("api_key is not valid")),
        },
    }
}

/// One endpoint serves one deployment; a `jurisdiction_id` names an org of it (the city,
/// a street…) and limits request lists to that org's area. Unknown → 404.
async fn jurisdiction(st: &AppState, p: &Params) -> Res<Option<gridloop_domain::org::Org>> {
    match p.get("jurisdiction_id").map(str::trim) {
        None => Ok(None),
        Some(j) => match st.store.org(j).await? {
            Some(o) => Ok(Some(o)),
            None => Err(Fail::not_found(format!("unknown jurisdiction_id {j}"))),
        },
    }
}

/// ISO-8601 with a time zone: `2026-11-24T10:00:00+08:00`, `…Z`, `…+0800`, fractions.
/// A `+` that a client forgot to encode arrives as a space and is put back.
fn parse_datetime(name: &str, raw: &str) -> Res<DateTime<Utc>> {
    let s = raw.trim().replace(' ', "+");
    let parsed = DateTime::parse_from_rfc3339(&s)
        .or_else(|_| DateTime::<FixedOffset>::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
        .or_else(|_| DateTime::<FixedOffset>::parse_from_str(&s, "%Y-%m-%dT%H:%M%#z"));
    match parsed {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(_) => Err(Fail::bad(format!(
            "{name} must be an ISO-8601 datetime with a time zone, e.g. 2026-11-24T10:00:00+08:00"
        ))),
    }
}

/// `[from, to)` from `start_date`/`end_date` (end inclusive): both absent → the last
/// `default_span` up to now; one absent → 90 days from (or up to) the other; more than 90
/// days apart, or reversed → 400.
fn date_range(
    now: DateTime<Utc>,
    p: &Params,
    default_span: Duration,
) -> Res<(DateTime<Utc>, DateTime<Utc>)> {
    let start = p
        .get("start_date")
        .map(|v| parse_datetime("start_date", v))
        .transpose()?;
    let end = p
        .get("end_date")
        .map(|v| parse_datetime("end_date", v))
        .transpose()?;
    let span = Duration::days(MAX_SPAN_DAYS);
    let out_of_range = || Fail::bad("start_date or end_date is out of range");
    let (from, to) = match (start, end) {
        (None, None) => (
            now.checked_sub_signed(default_span)
                .ok_or_else(out_of_range)?,
            now,
        ),
        (Some(s), None) => (s, s.checked_add_signed(span).ok_or_else(out_of_range)?),
        (None, Some(e)) => (e.checked_sub_signed(span).ok_or_else(out_of_range)?, e),
        (Some(s), Some(e)) => (s, e),
    };
    if to < from {
        return Err(Fail::bad("end_date is before start_date"));
    }
    if to - from > span {
        return Err(Fail::bad(format!(
            "start_date and end_date may be at most {MAX_SPAN_DAYS} days apart"
        )));
    }
    let to = to
        .checked_add_signed(Duration::milliseconds(1))
        .ok_or_else(out_of_range)?;
    Ok((from, to))
}

// --- services ------------------------------------------------------------------------------

/// `(code, description, keywords, group)` for each category.
const SERVICE_INFO: &[(&str, &str, &str, &str)] = &[
    (
        "public_facilities",
        "路灯、井盖、消防栓、公共座椅、垃圾箱等公用设施损坏或缺失",
        "路灯,井盖,消防栓,垃圾箱,公用设施",
        "城市管理",
    ),
    (
        "road_traffic",
        "道路破损、交通标志和护栏损坏、信号灯故障、违章停车",
        "道路,坑洼,护栏,信号灯,停车",
        "城市管理",
    ),
    (
        "city_appearance",
        "暴露垃圾、乱堆物料、乱涂乱画、占道经营等市容环境问题",
        "垃圾,堆物,涂画,占道,卫生",
        "城市管理",
    ),
    (
        "greening",
        "绿地被毁、树木倒伏或遮挡、绿化带缺损",
        "绿化,树木,草坪,公园",
        "城市管理",
    ),
    (
        "housing_land",
        "房屋破损、违法建设、私搭乱建、土地违法占用",
        "违建,房屋,搭建,土地",
        "城市管理",
    ),
    (
        "advertising",
        "违规广告牌、小广告、破损招牌",
        "广告,招牌,小广告",
        "城市管理",
    ),
    (
        "construction",
        "施工扰民、工地扬尘、渣土撒漏、围挡不规范",
        "施工,扬尘,渣土,噪音,工地",
        "城市管理",
    ),
    (
        "street_order",
        "无证摊贩、店外经营、非法营运等街面秩序问题",
        "摊贩,店外经营,秩序",
        "城市管理",
    ),
    (
        "emergency",
        "道路积水、管道破裂、路面塌陷等突发事件（危及人身安全请先拨打110/119/120）",
        "积水,塌陷,爆管,突发",
        "安全应急",
    ),
    (
        "safety_hazard",
        "消防通道堵塞、电动车违规充电、危房、燃气隐患等安全隐患",
        "消防通道,电动车,充电,燃气,隐患",
        "安全应急",
    ),
    (
        "environment",
        "噪声、油烟、污水排放、焚烧垃圾等生态环境问题",
        "噪声,油烟,污水,焚烧,污染",
        "安全应急",
    ),
    (
        "neighbour_dispute",
        "邻里、物业、劳资等矛盾纠纷的调解请求",
        "纠纷,调解,物业,邻里",
        "社会治理",
    ),
    (
        "livelihood",
        "困难群众帮扶、老人照护、社保咨询等民生服务",
        "帮扶,老人,社保,民生",
        "民生服务",
    ),
    (
        "enterprise_service",
        "企业经营中遇到的政策咨询、办事难等惠企服务诉求",
        "企业,政策,营商环境",
        "民生服务",
    ),
    (
        "epidemic",
        "疫情防控相关的问题与求助",
        "疫情,防控,健康",
        "安全应急",
    ),
    ("other", "以上类别之外的问题", "其他", "其他"),
];

fn find_service(code: &str) -> Option<(&'static str, &'static str, &'static str)> {
    CATEGORIES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(c, zh, en)| (*c, *zh, *en))
}

fn service_out(code: &str, zh: &str, en: &str) -> Out {
    let info = SERVICE_INFO.iter().find(|(c, _, _, _)| *c == code);
    Out::Obj(vec![
        ("service_code", Out::str(code)),
        ("service_name", Out::str(zh)),
        ("description", Out::str(info.map_or(en, |(_, d, _, _)| *d))),
        ("metadata", Out::Bool(true)),
        ("type", Out::str("realtime")),
        ("keywords", Out::str(info.map_or("", |(_, _, k, _)| *k))),
        ("group", Out::str(info.map_or("其他", |(_, _, _, g)| *g))),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    String,
    Number,
    Datetime,
    Text,
    Single,
    Multi,
}

impl DataType {
    fn as_str(self) -> &'static str {
        match self {
            DataType::String => "string",
            DataType::Number => "number",
            DataType::Datetime => "datetime",
            DataType::Text => "text",
            DataType::Single => "singlevaluelist",
            DataType::Multi => "multivaluelist",
        }
    }
}

/// An extra field of a service definition.
struct Attr {
    code: &'static str,
    /// False: shown to the user only, never submitted.
    variable: bool,
    datatype: DataType,
    required: bool,
    datatype_description: Option<&'static str>,
    description: &'static str,
    values: &'static [(&'static str, &'static str)],
}

const URGENCY: Attr = Attr {
    code: "urgency",
    variable: true,
    datatype: DataType::Single,
    required: false,
    datatype_description: Some("从列表中选择一项"),
    description: "紧急程度",
    values: &[
        ("normal", "一般"),
        ("urgent", "紧急"),
        ("critical", "十分紧急（可能危及人身安全）"),
    ],
};

const LANDMARK: Attr = Attr {
    code: "landmark",
    variable: true,
    datatype: DataType::String,
    required: false,
    datatype_description: Some("不超过200字"),
    description: "附近的标志物、门牌号或店铺名称，便于网格员找到现场",
    values: &[],
};

const AFFECTED: Attr = Attr {
    code: "affected",
    variable: true,
    datatype: DataType::Multi,
    required: false,
    datatype_description: Some("可多选"),
    description: "受影响的对象",
    values: &[
        ("pedestrians", "行人"),
        ("vehicles", "车辆"),
        ("residents", "周边居民"),
        ("businesses", "商户"),
        ("elderly_children", "老人或儿童"),
    ],
};

const OBSERVED_AT: Attr = Attr {
    code: "observed_at",
    variable: true,
    datatype: DataType::Datetime,
    required: false,
    datatype_description: Some("ISO-8601，带时区，如 2026-11-24T08:30:00+08:00"),
    description: "发现问题的时间",
    values: &[],
};

const PEOPLE: Attr = Attr {
    code: "people_involved",
    variable: true,
    datatype: DataType::Number,
    required: false,
    datatype_description: Some("整数"),
    description: "涉及人数",
    values: &[],
};

const SAFETY_NOTICE: Attr = Attr {
    code: "safety_notice",
    variable: false,
    datatype: DataType::Text,
    required: false,
    datatype_description: None,
    description: "如有人员伤亡、火情或燃气泄漏，请立即拨打110、119或120；本渠道不能代替紧急报警。",
    values: &[],
};

fn attributes_for(code: &str) -> Vec<&'static Attr> {
    let mut v: Vec<&'static Attr> = Vec::new();
    if matches!(code, "emergency" | "safety_hazard") {
        v.push(&SAFETY_NOTICE);
    }
    v.extend([&URGENCY, &LANDMARK, &AFFECTED, &OBSERVED_AT]);
    if code == "neighbour_dispute" {
        v.push(&PEOPLE);
    }
    v
}

fn attr_out(a: &Attr, order: usize) -> Out {
    let mut fields = vec![
        ("variable", Out::Bool(a.variable)),
        ("code", Out::str(a.code)),
        ("datatype", Out::str(a.datatype.as_str())),
        ("required", Out::Bool(a.required)),
        (
            "datatype_description",
            Out::opt(a.datatype_description.map(str::to_string)),
        ),
        ("order", Out::Int(order as i64)),
        ("description", Out::str(a.description)),
    ];
    if matches!(a.datatype, DataType::Single | DataType::Multi) {
        fields.push((
            "values",
            Out::List(
                "value",
                a.values
                    .iter()
                    .map(|(k, n)| Out::Obj(vec![("key", Out::str(k)), ("name", Out::str(n))]))
                    .collect(),
            ),
        ));
    }
    Out::Obj(fields)
}

/// `attribute[CODE]=v` and `attribute[CODE][]=v` checked against the service definition:
/// unknown codes, values outside a list, or bad numbers and datetimes → 400.
fn parse_attributes(service: &str, p: &Params) -> Res<Map<String, Value>> {
    let defs = attributes_for(service);
    let mut given: Vec<(&str, Vec<&str>)> = Vec::new();
    for (k, v) in &p.0 {
        let Some(rest) = k.strip_prefix("attribute[") else {
            continue;
        };
        let code = rest
            .strip_suffix("][]")
            .or_else(|| rest.strip_suffix(']'))
            .filter(|c| !c.is_empty() && !c.contains(['[', ']']))
            .ok_or_else(|| Fail::bad(format!("malformed attribute parameter {k}")))?;
        match given.iter_mut().find(|(c, _)| *c == code) {
            Some((_, vals)) => vals.push(v.as_str()),
            None => given.push((code, vec![v.as_str()])),
        }
    }
    let mut out = Map::new();
    for (code, vals) in &given {
        let def = defs
            .iter()
            .find(|a| a.code == *code)
            .ok_or_else(|| Fail::bad(format!("unknown attribute {code} for service {service}")))?;
        if !def.variable {
            continue;
        }
        let single = || -> Res<&str> {
            match vals.as_slice() {
                [one] => Ok(one.trim()),
                _ => Err(Fail::bad(format!("attribute {code} takes one value"))),
            }
        };
        let in_list = |v: &str| -> Res<()> {
            if def.values.iter().any(|(k, _)| *k == v) {
                Ok(())
            } else {
                Err(Fail::bad(format!(
                    "attribute {code}: {v} is not one of its values"
                )))
            }
        };
        let value = match def.datatype {
            DataType::String | DataType::Text => {
                let v = single()?;
                if v.chars().count() > 200 {
                    return Err(Fail::bad(format!(
                        "attribute {code} must be at most 200 characters"
                    )));
                }
                json!(v)
            }
            DataType::Number => {
                let v = single()?;
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() => json!(n),
                    _ => return Err(Fail::bad(format!("attribute {code} must be a number"))),
                }
            }
            DataType::Datetime => {
                let t = parse_datetime(&format!("attribute {code}"), single()?)?;
                json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            DataType::Single => {
                let v = single()?;
                in_list(v)?;
                json!(v)
            }
            DataType::Multi => {
                let mut keys: Vec<&str> = Vec::new();
                for v in vals {
                    let v = v.trim();
                    in_list(v)?;
                    if !keys.contains(&v) {
                        keys.push(v);
                    }
                }
                json!(keys)
            }
        };
        out.insert((*code).to_string(), value);
    }
    if let Some(missing) = defs
        .iter()
        .find(|a| a.variable && a.required && !out.contains_key(a.code))
    {
        return Err(Fail::bad(format!("attribute {} is required", missing.code)));
    }
    Ok(out)
}

// --- requests ------------------------------------------------------------------------------

fn iso(cal: &Calendar, t: DateTime<Utc>) -> String {
    t.with_timezone(&cal.tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Masks digit runs that look like phone or ID numbers (7+ digits) in free text.
fn scrub(text: &str) -> String {
    fn flush(run: &mut String, out: &mut String) {
        let n = run.chars().count();
        if n >= 15 {
            // ID numbers: keep 6 + 4.
            let chars: Vec<char> = run.chars().collect();
            out.extend(&chars[..6]);
            out.push_str(&"*".repeat(n - 10));
            out.extend(&chars[n - 4..]);
        } else if n >= 7 {
            out.push_str(&mask_phone(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() || ((c == 'X' || c == 'x') && run.chars().count() == 17) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Org names by code, looked up once per answer.
#[derive(Default)]
struct OrgNames(HashMap<String, Option<String>>);

impl OrgNames {
    async fn name(&mut self, st: &AppState, code: &str) -> Res<Option<String>> {
        if let Some(n) = self.0.get(code) {
            return Ok(n.clone());
        }
        let n = st.store.org(code).await?.map(|o| o.name);
        self.0.insert(code.to_string(), n.clone());
        Ok(n)
    }
}

fn attribute_str(c: &Case, key: &str) -> Option<String> {
    c.attributes
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn service_notice(st: &AppState) -> String {
    let p = &st.policy;
    format!(
        "已收到。受理后按“135”工作法办理：简单问题{}个工作日、较难问题{}个工作日内办结，暂难解决的{}个工作日内拿出方案。",
        p.days_for(Difficulty::Simple),
        p.days_for(Difficulty::Difficult),
        p.days_for(Difficulty::UnsolvableNow)
    )
}

fn status_notes(c: &Case) -> String {
    let text = match c.status {
        Status::Replied | Status::Closed => c.result.clone(),
        Status::Rejected => c.reject_reason.as_ref().map(|r| format!("不予受理：{r}")),
        Status::Merged => Some("重复诉求，已并入另一诉求一并办理".to_string()),
        _ => None,
    };
    text.map_or_else(|| c.status.zh().to_string(), |t| scrub(&t))
}

/// A case as an Open311 request: no personal data.
async fn request_out(st: &AppState, cal: &Calendar, names: &mut OrgNames, c: &Case) -> Res<Out> {
    let code = c.category.clone().unwrap_or_else(|| "other".to_string());
    let service_name = find_service(&code).map(|(_, zh, _)| zh.to_string());
    let description = if c.description.trim().is_empty() {
        &c.title
    } else {
        &c.description
    };
    let agency = names.name(st, &c.org).await?;
    Ok(Out::Obj(vec![
        ("service_request_id", Out::Str(c.number.clone())),
        (
            "status",
            Out::str(if c.status.is_open() { "open" } else { "closed" }),
        ),
        ("status_notes", Out::Str(status_notes(c))),
        ("service_name", Out::opt(service_name)),
        ("service_code", Out::Str(code)),
        (
            "description",
            Out::Str(truncate(&scrub(description), DESCRIPTION_MAX)),
        ),
        ("agency_responsible", Out::opt(agency)),
        (
            "service_notice",
            if c.status.is_open() {
                Out::Str(service_notice(st))
            } else {
                Out::Null
            },
        ),
        ("requested_datetime", Out::Str(iso(cal, c.created_at))),
        (
            "updated_datetime",
            Out::Str(iso(
                cal,
                match c.closed_at {
                    Some(t) if c.status == Status::Closed => t,
                    _ => c.updated_at,
                },
            )),
        ),
        (
            "expected_datetime",
            Out::opt(c.deadline.map(|d| iso(cal, d))),
        ),
        ("address", Out::opt(c.address.as_deref().map(scrub))),
        ("address_id", Out::opt(attribute_str(c, "address_id"))),
        ("zipcode", Out::Null),
        ("lat", c.location.map_or(Out::Null, |l| Out::Num(l.lat))),
        ("long", c.location.map_or(Out::Null, |l| Out::Num(l.lng))),
        ("media_url", Out::opt(attribute_str(c, "media_url"))),
    ]))
}

fn valid_media_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && u.len() <= 2048
            && !u.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && e.len() <= 254
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `first_name` and `last_name` as one name: family name first when either is Chinese.
fn full_name(first: Option<String>, last: Option<String>) -> Option<String> {
    match (first, last) {
        (None, None) => None,
        (Some(f), None) => Some(f),
        (None, Some(l)) => Some(l),
        (Some(f), Some(l)) => {
            if f.is_ascii() && l.is_ascii() {
                Some(format!("{f} {l}"))
            } else {
                Some(format!("{l}{f}"))
            }
        }
    }
}

/// The location: `lat` + `long` (WGS-84), or `address_string`, or `address_id`.
fn parse_location(p: &Params) -> Res<Option<Location>> {
    match (p.get("lat"), p.get("long")) {
        (None, None) => Ok(None),
        (Some(lat), Some(lng)) => {
            let num = |name: &str, v: &str| -> Res<f64> {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| Fail::bad(format!("{name} must be a number")))
            };
            let loc = Location {
                lat: num("lat", lat)?,
                lng: num("long", lng)?,
            };
            loc.validate()?;
            Ok(Some(loc))
        }
        _ => Err(Fail::bad("lat and long must be given together")),
    }
}

async fn create_request(
    st: &AppState,
    p: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Res<(&'static str, Out)> {
    let key = api_client(st, p, true)
        .await?
        .ok_or_else(|| Fail::forbidden("api_key is required"))?;
    jurisdiction(st, p).await?;
    let code = p
        .get("service_code")
        .map(str::trim)
        .ok_or_else(|| Fail::bad("service_code is required"))?;
    let (code, zh, _) = find_service(code)
        .ok_or_else(|| Fail::not_found(format!("unknown service_code {code}")))?;
    let location = parse_location(p)?;
    let address = p.short("address_string", 300)?;
    let address_id = p.short("address_id", 100)?;
    if location.is_none() && address.is_none() && address_id.is_none() {
        return Err(Fail::bad(
            "a location is required: lat and long, address_string or address_id",
        ));
    }
    let description = p.get("description").map(str::trim).unwrap_or("");
    if description.chars().count() > DESCRIPTION_MAX {
        return Err(Fail::bad(format!(
            "description must be at most {DESCRIPTION_MAX} characters"
        )));
    }
    let email = p.short("email", 254)?;
    if let Some(e) = &email
        && !valid_email(e)
    {
        return Err(Fail::bad("email is not an e-mail address"));
    }
    let media_url = p.short("media_url", 2048)?;
    if let Some(u) = &media_url
        && !valid_media_url(u)
    {
        return Err(Fail::bad("media_url must be an http or https URL"));
    }
    let device_id = p.short("device_id", 200)?;
    let account_id = p.short("account_id", 200)?;
    let name = full_name(p.short("first_name", 50)?, p.short("last_name", 50)?);
    let phone = p.short("phone", 30)?;
    let attributes = parse_attributes(code, p)?;

    let mut extra = Map::new();
    extra.insert("source".into(), json!("open311"));
    extra.insert("client".into(), json!(key.name));
    extra.insert("service_code".into(), json!(code));
    extra.insert("attributes".into(), Value::Object(attributes));
    for (k, v) in [
        ("media_url", &media_url),
        ("address_id", &address_id),
        ("account_id", &account_id),
        ("device_id", &device_id),
        ("email", &email),
    ] {
        if let Some(v) = v {
            extra.insert(k.into(), json!(v));
        }
    }
    let title = match description.lines().next().map(str::trim) {
        Some(first) if !first.is_empty() => truncate(first, 30),
        _ => format!("{zh}问题"),
    };
    let area = match location {
        Some(loc) => st
            .routing()
            .locate(loc)
            .cloned()
            .unwrap_or_else(|| st.intake_org.clone()),
        None => st.intake_org.clone(),
    };
    let actor = Actor::ApiClient(key.name.clone());
    let idem = idempotency(headers, &actor.name(), body)?;
    let input = NewCase {
        channel: Some(Channel::Open311),
        title,
        description: description.to_string(),
        category: Some(code.to_string()),
        location,
        address,
        reporter: Reporter { name, phone },
        attributes: Some(Value::Object(extra)),
        ..NewCase::default()
    };
    let case = store_new_case(st, input, &actor, &area, idem).await?;
    let mut fields = vec![
        ("service_request_id", Out::Str(case.number)),
        ("service_notice", Out::Str(service_notice(st))),
    ];
    // Present only when the client sent one: the published schema has it as a string.
    if let Some(a) = account_id {
        fields.push(("account_id", Out::Str(a)));
    }
    Ok((
        "service_requests",
        Out::List("request", vec![Out::Obj(fields)]),
    ))
}

fn comma_list(v: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for x in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

async fn list_requests(st: &AppState, p: &Params) -> Res<(&'static str, Out)> {
    api_client(st, p, false).await?;
    let area = jurisdiction(st, p).await?;
    let limit = p.limit()?;
    let cal = st.calendar();
    let mut cases: Vec<Case> = Vec::new();
    if let Some(ids) = p.get("service_request_id") {
        // The id list overrides every other filter.
        for number in comma_list(ids).into_iter().take(limit) {
            if number.len() <= 64
                && let Some(c) = st.store.case_by_number(number).await?
            {
                cases.push(c);
            }
        }
    } else {
        let mut categories = Vec::new();
        if let Some(codes) = p.get("service_code") {
            for code in comma_list(codes) {
                let (c, _, _) = find_service(code)
                    .ok_or_else(|| Fail::not_found(format!("unknown service_code {code}")))?;
                categories.push(c.to_string());
            }
        }
        let mut statuses = Vec::new();
        if let Some(s) = p.get("status") {
            let (mut open, mut closed) = (false, false);
            for x in comma_list(s) {
                match x.to_ascii_lowercase().as_str() {
                    "open" => open = true,
                    "closed" => closed = true,
                    _ => return Err(Fail::bad(format!("status must be open or closed, not {x}"))),
                }
            }
            if open != closed {
                statuses = Status::ALL
                    .iter()
                    .copied()
                    .filter(|s| s.is_open() == open)
                    .collect();
            }
        }
        let (from, to) = date_range(st.clock.now(), p, Duration::days(MAX_SPAN_DAYS))?;
        let mut cursor = None;
        loop {
            let want = (limit - cases.len()).min(200) as u32;
            let page = st
                .store
                .list_cases(CaseFilter {
                    visible_to: None,
                    statuses: statuses.clone(),
                    area_path: area.as_ref().map(|o| o.path.clone()),
                    categories: categories.clone(),
                    created_from: Some(from),
                    created_to: Some(to),
                    sort: CaseSort::Newest,
                    limit: want,
                    cursor: cursor.take(),
                    ..CaseFilter::default()
                })
                .await?;
            cases.extend(page.items);
            match page.next_cursor {
                Some(c) if cases.len() < limit => cursor = Some(c),
                _ => break,
            }
        }
        cases.truncate(limit);
    }
    let mut names = OrgNames::default();
    let mut items = Vec::with_capacity(cases.len());
    for c in &cases {
        items.push(request_out(st, &cal, &mut names, c).await?);
    }
    Ok(("service_requests", Out::List("request", items)))
}

// --- updates (mySociety) ---------------------------------------------------------------------

/// What a timeline step means to a citizen: the mySociety status and a short description.
/// Internal steps (comments, reveals, supervision, extensions, ratings) are not updates.
async fn update_of(
    st: &AppState,
    names: &mut OrgNames,
    e: &Event,
) -> Res<Option<(&'static str, String)>> {
    let d = &e.details;
    let text = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .map(scrub)
            .unwrap_or_default()
    };
    let org = match d.get("org").and_then(Value::as_str) {
        Some(code) => names
            .name(st, code)
            .await?
            .unwrap_or_else(|| code.to_string()),
        None => String::new(),
    };
    let out = match e.action.as_str() {
        "accept" => {
            let difficulty = d
                .get("difficulty")
                .and_then(Value::as_str)
                .and_then(Difficulty::parse)
                .map(|x| format!("，{}", x.zh()))
                .unwrap_or_default();
            Some(("INVESTIGATING", format!("已受理{difficulty}")))
        }
        "dispatch" => Some(("ACTION_SCHEDULED", format!("已派遣至{org}办理"))),
        "claim" => Some(("IN_PROGRESS", "承办单位已签收，正在处置".to_string())),
        "return" => Some((
            "INVESTIGATING",
            "承办单位退回，指挥中心重新派遣".to_string(),
        )),
        "reply" => Some((
            "IN_PROGRESS",
            format!("承办单位已回复，待核查：{}", text("result")),
        )),
        "verify" => {
            if d.get("passed").and_then(Value::as_bool) == Some(true) {
                Some(("FIXED", "经核查，问题已解决，已办结".to_string()))
            } else {
                Some(("IN_PROGRESS", "核查未通过，返工处置".to_string()))
            }
        }
        "close" => {
            if d.get("on_the_spot").and_then(Value::as_bool) == Some(true) {
                Some(("FIXED", format!("当场整改：{}", text("result"))))
            } else {
                Some(("CLOSED", format!("已结案：{}", text("note"))))
            }
        }
        "reject" => Some(("NO_FURTHER_ACTION", format!("不予受理：{}", text("reason")))),
        "merge" => Some((
            "DUPLICATE",
            format!("重复诉求，已并入{}", text("into_number")),
        )),
        "escalate" => Some(("INTERNAL_REFERRAL", format!("已上报{org}协调办理"))),
        "reopen" => Some(("OPEN", "群众评价不满意，重新办理".to_string())),
        _ => None,
    };
    Ok(out)
}

async fn list_updates(st: &AppState, p: &Params) -> Res<(&'static str, Out)> {
    api_client(st, p, true).await?;
    let area = jurisdiction(st, p).await?;
    let limit = p.limit()?;
    let cal = st.calendar();
    let (mut from, to) = date_range(st.clock.now(), p, Duration::days(1))?;
    // Events in chain order; page by time, skipping what an earlier page returned.
    let mut last_id = i64::MIN;
    let mut names = OrgNames::default();
    let mut updates: Vec<(Event, &'static str, String)> = Vec::new();
    for _ in 0..50 {
        let page = st.store.events_between(from, to, 1000).await?;
        let full = page.len() == 1000;
        let next_from = page.last().map(|e| e.at);
        for e in page {
            if e.id <= last_id || updates.len() >= limit {
                continue;
            }
            last_id = e.id;
            if let Some((status, text)) = update_of(st, &mut names, &e).await? {
                updates.push((e, status, text));
            }
        }
        match next_from {
            Some(n) if full && updates.len() < limit && n > from => from = n,
            _ => break,
        }
    }
    // The cases' numbers (and areas, for a jurisdiction), in batches.
    let ids: Vec<i64> = {
        let mut seen = HashSet::new();
        updates
            .iter()
            .map(|(e, _, _)| e.case_id)
            .filter(|id| seen.insert(*id))
            .collect()
    };
    let mut cases: HashMap<i64, (String, String)> = HashMap::new();
    for chunk in ids.chunks(200) {
        let page = st
            .store
            .list_cases(CaseFilter {
                visible_to: None,
                ids: chunk.to_vec(),
                limit: 200,
                ..CaseFilter::default()
            })
            .await?;
        for c in page.items {
            cases.insert(c.id, (c.number, c.area_path));
        }
    }
    let items = updates
        .into_iter()
        .filter_map(|(e, status, text)| {
            let (number, area_path) = cases.get(&e.case_id)?;
            if let Some(o) = &area
                && !o.as_ref().covers(area_path)
            {
                return None;
            }
            let external = e
                .details
                .get("to")
                .and_then(Value::as_str)
                .unwrap_or(&e.action)
                .to_string();
            Some(Out::Obj(vec![
                ("update_id", Out::Str(e.id.to_string())),
                ("service_request_id", Out::Str(number.clone())),
                ("status", Out::str(status)),
                ("updated_datetime", Out::Str(iso(&cal, e.at))),
                ("description", Out::Str(truncate(&text, DESCRIPTION_MAX))),
                ("media_url", Out::Null),
                ("external_status_code", Out::Str(external)),
            ]))
        })
        .collect();
    Ok((
        "service_request_updates",
        Out::List("request_update", items),
    ))
}

// --- handlers ------------------------------------------------------------------------------

fn discovery(headers: &HeaderMap) -> (&'static str, Out) {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    let endpoint = Out::Obj(vec![
        (
            "specification",
            Out::str("http://wiki.open311.org/GeoReport_v2"),
        ),
        ("url", Out::Str(format!("{scheme}://{host}/open311/v2"))),
        ("changeset", Out::str(CHANGESET)),
        ("type", Out::str("production")),
        (
            "formats",
            Out::List(
                "format",
                vec![Out::str("application/json"), Out::str("text/xml")],
            ),
        ),
    ]);
    (
        "discovery",
        Out::Obj(vec![
            ("changeset", Out::str(CHANGESET)),
            (
                "contact",
                Out::str("请联系本街道指挥中心（基层治理四平台）"),
            ),
            (
                "key_service",
                Out::str("API 密钥由系统管理员发放：gridloop apikey add --name NAME"),
            ),
            ("endpoints", Out::List("endpoint", vec![endpoint])),
        ]),
    )
}

fn services() -> (&'static str, Out) {
    (
        "services",
        Out::List(
            "service",
            CATEGORIES
                .iter()
                .map(|(c, zh, en)| service_out(c, zh, en))
                .collect(),
        ),
    )
}

/// `/open311/v2/{name}.{fmt}`: discovery, services, requests, servicerequestupdates.
async fn top(
    State(st): State<AppState>,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (name, fmt) = match file_of(path) {
        Ok(x) => x,
        Err(f) => return f.respond(Format::Json),
    };
    let result = async {
        let post = method == Method::POST;
        let body = match (post, body) {
            (false, _) => None,
            (true, Ok(b)) => Some(b),
            (true, Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(Fail::bad(format!(
                    "the request body is larger than {BODY_LIMIT} bytes"
                )));
            }
            (true, Err(e)) => return Err(Fail::bad(format!("cannot read the body: {e}"))),
        };
        match name.as_str() {
            "discovery" | "services" | "servicerequestupdates" if !is_get(&method) => {
                Err(method_fail("GET"))
            }
            "discovery" => Ok(discovery(&headers)),
            "services" => {
                let p = Params::parse(query.as_deref(), None)?;
                jurisdiction(&st, &p).await?;
                Ok(services())
            }
            "servicerequestupdates" => {
                let p = Params::parse(query.as_deref(), None)?;
                list_updates(&st, &p).await
            }
            "requests" if post => {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/x-www-form-urlencoded");
                if !ct
                    .trim()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
                {
                    return Err(Fail::bad(
                        "POST bodies must be application/x-www-form-urlencoded",
                    ));
                }
                let body = body.unwrap_or_default();
                let p = Params::parse(query.as_deref(), Some(&body))?;
                create_request(&st, &p, &headers, &body).await
            }
            "requests" if is_get(&method) => {
                let p = Params::parse(query.as_deref(), None)?;
                list_requests(&st, &p).await
            }
            "requests" => Err(method_fail("GET or POST")),
            other => Err(Fail::not_found(format!("no such resource {other}"))),
        }
    }
    .await;
    match result {
        Ok((root, doc)) => render(fmt, root, &doc),
        Err(f) => f.respond(fmt),
    }
}

/// `services/{code}.{fmt}`: the service definition.
async fn service_definition(
    State(st): State<AppState>,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let (code, fmt) = match file_of(path) {
        Ok(x) => x,
        Err(f) => return f.respond(Format::Json),
    };
    let result = async {
        if !is_get(&method) {
            return Err(method_fail("GET"));
        }
        let p = Params::parse(query.as_deref(), None)?;
        jurisdiction(&st, &p).await?;
        let (code, _, _) = find_service(&code)
            .ok_or_else(|| Fail::not_found(format!("unknown service_code {code}")))?;
        let attrs = attributes_for(code)
            .into_iter()
            .enumerate()
            .map(|(i, a)| attr_out(a, i + 1))
            .collect();
        Ok((
            "service_definition",
            Out::Obj(vec![
                ("service_code", Out::str(code)),
                ("attributes", Out::List("attribute", attrs)),
            ]),
        ))
    }
    .await;
    match result {
        Ok((root, doc)) => render(fmt, root, &doc),
        Err(f) => f.respond(fmt),
    }
}

/// `requests/{id}.{fmt}`: one request (a list of one, as the spec has it).
async fn one_request(
    State(st): State<AppState>,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let (number, fmt) = match file_of(path) {
        Ok(x) => x,
        Err(f) => return f.respond(Format::Json),
    };
    let result = async {
        if !is_get(&method) {
            return Err(method_fail("GET"));
        }
        let p = Params::parse(query.as_deref(), None)?;
        api_client(&st, &p, false).await?;
        jurisdiction(&st, &p).await?;
        let not_found = || Fail::not_found(format!("unknown service_request_id {number}"));
        if number.len() > 64 {
            return Err(not_found());
        }
        let case = st
            .store
            .case_by_number(&number)
            .await?
            .ok_or_else(not_found)?;
        let cal = st.calendar();
        let item = request_out(&st, &cal, &mut OrgNames::default(), &case).await?;
        Ok(("service_requests", Out::List("request", vec![item])))
    }
    .await;
    match result {
        Ok((root, doc)) => render(fmt, root, &doc),
        Err(f) => f.respond(fmt),
    }
}

/// `tokens/{token}.{fmt}`: requests are created at once and answered with their id, so the
/// only tokens are the numbers of requests made through Open311.
async fn token(
    State(st): State<AppState>,
    method: Method,
    path: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    let (token, fmt) = match file_of(path) {
        Ok(x) => x,
        Err(f) => return f.respond(Format::Json),
    };
    let result = async {
        if !is_get(&method) {
            return Err(method_fail("GET"));
        }
        let p = Params::parse(query.as_deref(), None)?;
        jurisdiction(&st, &p).await?;
        let not_found = || Fail::not_found(format!("unknown token {token}"));
        if token.len() > 64 {
            return Err(not_found());
        }
        match st.store.case_by_number(&token).await? {
            Some(c) if c.channel == Channel::Open311 => Ok((
                "service_requests",
                Out::List(
                    "request",
                    vec![Out::Obj(vec![
                        ("service_request_id", Out::Str(c.number)),
                        ("token", Out::Str(token.clone())),
                    ])],
                ),
            )),
            _ => Err(not_found()),
        }
    }
    .await;
    match result {
        Ok((root, doc)) => render(fmt, root, &doc),
        Err(f) => f.respond(fmt),
    }
}

/// Anything else under `/open311/v2/`: 404 in the format the path asks for.
async fn unknown(uri: axum::http::Uri) -> Response {
    let fmt = if uri.path().to_ascii_lowercase().ends_with(".xml") {
        Format::Xml
    } else {
        Format::Json
    };
    Fail::not_found("no such Open311 resource; see discovery.json").respond(fmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_and_drops_invalid_characters() {
        let doc = Out::Obj(vec![
            ("a", Out::str("<&>\"'\u{1}ok\t")),
            ("b", Out::Null),
            ("c", Out::List("x", vec![Out::Int(1), Out::Bool(true)])),
        ]);
        let mut s = String::new();
        doc.write_xml("r", &mut s);
        assert_eq!(
            s,
            "<r><a>&lt;&amp;&gt;&quot;&apos;ok\t</a><b></b><c><x>1</x><x>true</x></c></r>"
        );
        assert_eq!(
            doc.to_json(),
            json!({"a": "<&>\"'\u{1}ok\t", "b": null, "c": [1, true]})
        );
    }

    #[test]
    fn formats_by_suffix() {
        assert_eq!(
            split_format("services.json").unwrap(),
            ("services", Format::Json)
        );
        assert_eq!(split_format("a.b.XML").unwrap(), ("a.b", Format::Xml));
        assert_eq!(
            split_format("services").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            split_format("services.csv").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn masks_numbers_in_free_text() {
        assert_eq!(scrub("电话13812345678,谢谢"), "电话138****5678,谢谢");
        assert_eq!(
            scrub("身份证33078219900101123X"),
            "身份证330782********123X"
        );
        assert_eq!(scrub("3号楼201室"), "3号楼201室");
    }

    #[test]
    fn datetimes_need_a_zone() {
        let t = parse_datetime("d", "2026-11-24T10:00:00+08:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T02:00:00+00:00");
        assert!(parse_datetime("d", "2026-11-24T10:00:00 08:00").is_ok());
        assert!(parse_datetime("d", "2026-11-24T02:00:00Z").is_ok());
        assert!(parse_datetime("d", "2026-11-24T10:00:00+0800").is_ok());
        assert!(parse_datetime("d", "2026-11-24T10:00:00").is_err());
        assert!(parse_datetime("d", "yesterday").is_err());
    }

    #[test]
    fn date_ranges() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T10:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let p = |q: &str| Params::parse(Some(q), None).unwrap();
        let (f, t) = date_range(now, &p(""), Duration::days(90)).unwrap();
        assert_eq!(t - f, Duration::days(90) + Duration::milliseconds(1));
        let too_long = p("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z");
        assert_eq!(
            date_range(now, &too_long, Duration::days(90))
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        let reversed = p("start_date=2026-06-01T00:00:00Z&end_date=2026-05-01T00:00:00Z");
        assert!(date_range(now, &reversed, Duration::days(90)).is_err());
        let far = p("start_date=%2B262142-12-31T00:00:00Z");
        assert!(date_range(now, &far, Duration::days(90)).is_err());
    }

    #[test]
    fn attributes_follow_the_definition() {
        let p = |q: &str| Params::parse(Some(q), None).unwrap();
        let a = parse_attributes(
            "public_facilities",
            &p("attribute[urgency]=urgent&attribute[affected][]=vehicles&attribute[affected][]=residents&attribute[landmark]=%E5%8D%97%E9%97%A8"),
        )
        .unwrap();
        assert_eq!(
            Value::Object(a),
            json!({"urgency": "urgent", "affected": ["vehicles", "residents"], "landmark": "南门"})
        );
        for bad in [
            "attribute[urgency]=sideways",
            "attribute[urgency][]=normal&attribute[urgency][]=urgent",
            "attribute[nope]=1",
            "attribute[=1",
            "attribute[observed_at]=yesterday",
        ] {
            assert!(
                parse_attributes("public_facilities", &p(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(parse_attributes("public_facilities", &p("attribute[people_involved]=3")).is_err());
        assert!(parse_attributes("neighbour_dispute", &p("attribute[people_involved]=3")).is_ok());
    }

    #[test]
    fn every_category_is_described() {
        for (code, _, _) in CATEGORIES {
            assert!(
                SERVICE_INFO.iter().any(|(c, _, _, _)| c == code),
                "{code} lacks a service description"
            );
        }
    }
}
