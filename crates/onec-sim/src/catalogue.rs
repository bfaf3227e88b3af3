//! The sample catalogue: products, orders, the product photo and the report files.

use serde_json::{json, Value};

/// A product of the sample catalogue.
#[derive(Debug, Clone)]
pub struct Product {
    /// The article, e.g. `DR-001`.
    pub code: &'static str,
    /// The name shown in lists and cards.
    pub name: &'static str,
    /// The retail price in roubles.
    pub price: i64,
}

/// The catalogue, in the order searches return it. Seven drills ("дрель"), so a list of five
/// per page has two pages.
pub const PRODUCTS: &[Product] = &[
    Product { code: "DR-001", name: "Дрель ударная Bosch PSB 500", price: 5490 },
    Product { code: "DR-002", name: "Дрель-шуруповёрт Makita DF333", price: 8990 },
    Product { code: "DR-003", name: "Дрель аккумуляторная Интерскол ДА-12", price: 4350 },
    Product { code: "DR-004", name: "Дрель ударная Зубр ДУ-750", price: 3190 },
    Product { code: "DR-005", name: "Дрель безударная Metabo BE 650", price: 7800 },
    Product { code: "DR-006", name: "Дрель-миксер Ресанта ДМ-1200", price: 6250 },
    Product { code: "DR-007", name: "Дрель ударная DeWalt DWD024", price: 9900 },
    Product { code: "PF-001", name: "Перфоратор Bosch GBH 2-26", price: 15990 },
    Product { code: "SH-001", name: "Шуруповёрт Makita 6281DWPE", price: 11200 },
    Product { code: "UG-001", name: "Болгарка (УШМ) Интерскол 125/900", price: 3890 },
    Product { code: "LB-001", name: "Лобзик электрический Зубр Л-570", price: 2990 },
    Product { code: "SV-008", name: "Сверло по металлу 8 мм", price: 120 },
    Product { code: "SV-010", name: "Сверло по бетону 10 мм", price: 180 },
    Product { code: "BT-032", name: "Набор бит 32 шт.", price: 690 },
    Product { code: "LU-001", name: "Лазерный уровень ADA Cube", price: 4590 },
];

/// Orders the service knows: number and stage (the order-status bot asks about them).
pub const ORDERS: &[(&str, &str)] =
    &[("100421", "В производстве"), ("100422", "Готов к выдаче"), ("100423", "Принят в работу")];

/// A 1×1 PNG, the product photo the service serves.
pub const PHOTO_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xdf, 0xc0, 0x00, 0x00, 0x04, 0x01, 0x01, 0x80, 0xc5, 0x2a, 0x18, 0x5d,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The MIME type of the Excel report.
pub const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A small valid one-page PDF with an ASCII line of text.
pub fn report_pdf(line: &str) -> Vec<u8> {
    let stream = format!("BT /F1 14 Tf 40 780 Td ({line}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    out
}

/// Bytes that look like an XLSX (a ZIP local file header and a sheet name); enough for the
/// bots, which pass the file on without opening it.
pub fn report_xlsx() -> Vec<u8> {
    let mut out = b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec();
    out.extend_from_slice(
        b"xl/worksheets/sheet1.xml <sheetData><row><c t=\"inlineStr\"><is><t>Stock</t></is></c></row>",
    );
    out
}

/// The detailed card of a product, as `GET /products/{code}` answers it.
pub(crate) fn product_json(p: &Product, base: &str) -> Value {
    let n = p.code.bytes().map(u64::from).sum::<u64>();
    json!({
        "code": p.code,
        "name": p.name,
        "price": p.price,
        "unit": "шт",
        "properties": [
            {"name": "Артикул", "value": p.code},
            {"name": "Гарантия", "value": "12 мес."},
            {"name": "Страна", "value": if p.name.contains("Интерскол") || p.name.contains("Зубр") { "Россия" } else { "Китай" }},
        ],
        "stock": [
            {"store": "Магазин на Ленина", "qty": n % 7},
            {"store": "Магазин на Мира", "qty": n % 5 + 1},
            {"store": "Центральный склад", "qty": n % 40 + 10},
        ],
        "prices": [
            {"point": "Розница", "price": p.price},
            {"point": "Опт", "price": p.price * 9 / 10},
        ],
        "photo_url": format!("{base}/photos/{}.png", p.code),
    })
}
