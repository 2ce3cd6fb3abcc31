//! Case categories: the 数字城管 component and event classes (GB/T 30428), plus the community
//! affairs the seed reports describe (disputes, help for the elderly, enterprise services).

use crate::DomainError;

/// `(code, 中文, English)`.
pub const CATEGORIES: &[(&str, &str, &str)] = &[
    ("public_facilities", "公用设施", "Public facilities"),
    ("road_traffic", "道路交通", "Roads and traffic"),
    ("city_appearance", "市容环境", "City appearance"),
    ("greening", "园林绿化", "Parks and greenery"),
    ("housing_land", "房屋土地", "Housing and land"),
    ("advertising", "宣传广告", "Advertising"),
    ("construction", "施工管理", "Construction"),
    ("street_order", "街面秩序", "Street order"),
    ("emergency", "突发事件", "Emergencies"),
    ("safety_hazard", "安全隐患", "Safety hazards"),
    ("environment", "生态环境", "Pollution and environment"),
    ("neighbour_dispute", "矛盾纠纷", "Disputes"),
    ("livelihood", "民生服务", "Livelihood and help"),
    ("enterprise_service", "惠企服务", "Enterprise services"),
    ("epidemic", "疫情防控", "Epidemic control"),
    ("other", "其他", "Other"),
];

pub fn validate(code: &str) -> Result<(), DomainError> {
    if CATEGORIES.iter().any(|(c, _, _)| *c == code) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "category",
            format!("unknown category {code}"),
        ))
    }
}

pub fn zh(code: &str) -> Option<&'static str> {
    CATEGORIES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, zh, _)| *zh)
}
