#!/usr/bin/env python3
"""Мост amoCRM ↔ okno для задач исполнителям (только стандартная библиотека Python 3.8+).

    сделка переведена на этап «Поиск исполнителя»
      └─► вебхук amoCRM  POST /amocrm      → POST {BRIDGE_OKNO_API}/tasks (задача в группу Telegram)
    исполнитель нажал «Взять»
      └─► вебхук okno    POST /okno  (task.claimed, подпись проверяется)
            → PATCH /api/v4/leads/{id}  responsible_user_id = пользователь amoCRM исполнителя
            → примечание в сделке: кто взял и когда

Пользователь amoCRM исполнителя — это external_id его контакта в okno вида «amo-user-<id>»
(контакт создаётся один раз, Telegram сотрудника связывается с ним кодом из
POST /api/v1/contacts/{id}/link). Если исполнитель не связан, ответственный не меняется, а в
сделку пишется примечание с его именем и @username.

Настройки — переменные окружения (не OKNO_*: эти okno читает сам и отвергает незнакомые):
    AMO_BASE            https://example.amocrm.ru
    AMO_TOKEN           долгосрочный токен интеграции amoCRM
    AMO_STATUS_ID       id этапа «Поиск исполнителя»
    BRIDGE_OKNO_API     http://127.0.0.1:8080/api/v1
    BRIDGE_OKNO_TOKEN   токен okno с ролью integration
    BRIDGE_CHANNEL      id Telegram-канала okno
    BRIDGE_CHAT         id группы исполнителей (-100…)
    BRIDGE_GROUP        необязательно: группа контактов, которой можно брать задачи
    BRIDGE_HOOK_SECRET  секрет подписки okno на task.claimed
    LISTEN              127.0.0.1:9100
"""

import hashlib
import hmac
import json
import os
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV = os.environ
POSTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "posted_leads.json")


def call(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=20) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def amo(method, path, body=None):
    return call(method, ENV["AMO_BASE"].rstrip("/") + path, ENV["AMO_TOKEN"], body)


def okno(method, path, body=None):
    return call(method, ENV["BRIDGE_OKNO_API"].rstrip("/") + path, ENV["BRIDGE_OKNO_TOKEN"], body)


def posted():
    try:
        with open(POSTED) as f:
            return set(json.load(f))
    except FileNotFoundError:
        return set()


def remember(lead_id):
    ids = posted() | {lead_id}
    with open(POSTED, "w") as f:
        json.dump(sorted(ids), f)


def field(entity, code):
    """Значение поля amoCRM по коду (PHONE, EMAIL) или названию."""
    for f in entity.get("custom_fields_values") or []:
        if code in (f.get("field_code"), f.get("field_name")):
            values = f.get("values") or []
            if values:
                return str(values[0].get("value"))
    return None


def post_task(lead_id):
    """Сделка на этапе «Поиск исполнителя» → задача в группе (одна на сделку)."""
    if lead_id in posted():
        return
    lead = amo("GET", "/api/v4/leads/%d?with=contacts" % lead_id)
    lines = []
    if lead.get("price"):
        lines.append("Оплата: %s ₽" % lead["price"])
    for name in ("Адрес", "Срок", "Что сделать"):
        value = field(lead, name)
        if value:
            lines.append("%s: %s" % (name, value))
    private = []
    contacts = (lead.get("_embedded") or {}).get("contacts") or []
    if contacts:
        client = amo("GET", "/api/v4/contacts/%d" % contacts[0]["id"])
        private.append("Клиент: %s" % client.get("name", ""))
        phone = field(client, "PHONE")
        if phone:
            private.append("Телефон: %s" % phone)
    body = {
        "channel_id": ENV["BRIDGE_CHANNEL"],
        "chat_id": ENV["BRIDGE_CHAT"],
        "title": lead.get("name") or "Сделка %d" % lead_id,
        "text": "\n".join(lines),
        "data": {"lead_id": lead_id},
    }
    if private:
        body["private_text"] = "\n".join(private)
    if ENV.get("BRIDGE_GROUP"):
        body["group"] = ENV["BRIDGE_GROUP"]
    task = okno("POST", "/tasks", body)
    remember(lead_id)
    print("сделка %d → задача %s" % (lead_id, task["id"]), flush=True)


def claimed(event):
    """task.claimed → ответственный в сделке и примечание."""
    data = event["data"]
    lead_id = (data["task"].get("data") or {}).get("lead_id")
    if not lead_id:
        return
    executor = data["executor"]
    who = executor["name"] + (" (@%s)" % executor["username"] if executor.get("username") else "")
    external = (data.get("contact") or {}).get("external_id") or ""
    if external.startswith("amo-user-"):
        amo("PATCH", "/api/v4/leads/%d" % lead_id, {"responsible_user_id": int(external[len("amo-user-"):])})
    note = "Исполнитель найден: %s, Telegram id %s, %s" % (who, executor["user_id"], data["task"]["claimed_at"])
    amo("POST", "/api/v4/leads/%d/notes" % lead_id, [{"note_type": "common", "params": {"text": note}}])
    print("сделка %d ← %s" % (lead_id, who), flush=True)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            if self.path == "/amocrm":
                # amoCRM шлёт form-urlencoded: leads[status][0][id]=…&leads[status][0][status_id]=…
                form = urllib.parse.parse_qs(raw.decode())
                n = 0
                while "leads[status][%d][id]" % n in form:
                    status = form.get("leads[status][%d][status_id]" % n, [""])[0]
                    if status == ENV["AMO_STATUS_ID"]:
                        post_task(int(form["leads[status][%d][id]" % n][0]))
                    n += 1
            elif self.path == "/okno":
                expected = "sha256=" + hmac.new(ENV["BRIDGE_HOOK_SECRET"].encode(), raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get("X-Okno-Signature", "")):
                    self.send_response(401)
                    self.end_headers()
                    return
                event = json.loads(raw)
                if event.get("type") == "task.claimed":
                    claimed(event)
            else:
                self.send_response(404)
                self.end_headers()
                return
        except Exception as e:  # okno и amoCRM повторят запрос позже
            print("ошибка: %s" % e, file=sys.stderr, flush=True)
            self.send_response(502)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()


if __name__ == "__main__":
    host, port = ENV.get("LISTEN", "127.0.0.1:9100").rsplit(":", 1)
    print("мост amoCRM ↔ okno слушает %s:%s" % (host, port), flush=True)
    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
