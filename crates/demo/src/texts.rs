//! The demo's texts in the operator UI's two languages: its pages (the phone, the 1C console),
//! the people's roles and hints, and the notice it gives okno's operator UI. The visitor's
//! language is the operator UI's ([`Lang::of`]: the `okno_lang` cookie, else the browser's).

use okno_server::ui::i18n::Lang;
use okno_server::ui::Localized;

/// Every text of the demo: (key, English, Russian) — for the test that no page shows the other
/// language's words.
pub fn texts() -> &'static [(&'static str, &'static str, &'static str)] {
    TEXTS
}

/// The text for `key` in `lang`; an unknown key shows as itself, so a gap is visible.
pub fn t(lang: Lang, key: &str) -> String {
    TEXTS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, en, ru)| if lang == Lang::Ru { *ru } else { *en })
        .unwrap_or(key)
        .to_string()
}

/// The text for `key` in both languages, for okno's operator UI.
pub fn localized(key: &str) -> Localized {
    Localized::new(t(Lang::En, key), t(Lang::Ru, key))
}

/// key, English, Russian.
const TEXTS: &[(&str, &str, &str)] = &[
    // The operator UI's banner and login word.
    ("demo_badge", "Demo", "Демо"),
    (
        "demo_banner",
        "Customers, employees, Telegram and 1C are simulated here; nothing leaves this computer.",
        "Клиенты, сотрудники, Telegram и 1С здесь — симуляция; ничего не уходит за пределы этого компьютера.",
    ),
    ("demo_open_phone", "📱 Phone: be a customer or an employee", "📱 Телефон: станьте клиентом или сотрудником"),
    ("demo_open_console", "🏢 1C console", "🏢 Пульт 1С"),
    ("demo_admin", "Demo administrator", "Демо-администратор"),
    ("demo_title_phone", "Phone", "Телефон"),
    ("demo_title_console", "1C console", "Пульт 1С"),
    ("demo_nav_phone", "📱 Phone", "📱 Телефон"),
    ("demo_nav_console", "🏢 1C console", "🏢 Пульт 1С"),
    ("demo_nav_okno", "🪟 Operator window", "🪟 Окно оператора"),
    (
        "demo_live_off",
        "Live updates are off; the page reconnects by itself.",
        "Живые обновления отключены; страница переподключится сама.",
    ),
    ("demo_you_are", "You are", "Вы —"),
    (
        "demo_phone_note",
        "What the bots send arrives here live; what people write to operators appears in the",
        "Ответы ботов приходят сюда сразу; то, что люди пишут операторам, появляется в разделе",
    ),
    ("demo_chats", "Chats", "Чаты"),
    ("demo_back", "Back", "Назад"),
    ("demo_attach", "Send a file", "Отправить файл"),
    ("demo_write", "Message", "Сообщение"),
    ("demo_send", "Send", "Отправить"),
    ("demo_start", "Start", "Начать"),
    ("demo_pick_chat", "Pick a chat on the left.", "Выберите чат слева."),
    ("demo_reply", "Reply", "Ответить"),
    ("demo_edited", "edited", "изменено"),
    ("demo_you_pressed", "You pressed", "Вы нажали"),
    (
        "demo_not_started",
        "Not started yet: open the chat and press Start.",
        "Ещё не начат: откройте чат и нажмите «Начать».",
    ),
    ("demo_no_messages", "No messages yet.", "Сообщений пока нет."),
    ("demo_open_bot", "Open the bot", "Открыть бота"),
    ("demo_group_members", "Members", "Участники"),
    ("demo_photo", "🖼 Photo", "🖼 Фото"),
    (
        "demo_console_intro",
        "Here you are the business system (1C): post the sample events and the task to okno's API as 1C would, and see okno's deliveries and everything that reached 1C. Then look at the phones.",
        "Здесь вы — учётная система (1С): отправьте в API okno образцы событий и задачу, как это делает 1С, и посмотрите, кому okno их доставил и что пришло в 1С. Затем загляните в телефоны.",
    ),
    ("demo_events", "Events from 1C (examples/events)", "События из 1С (examples/events)"),
    (
        "demo_events_hint",
        "The first post uses the sample's own key; posting it again shows okno refusing a duplicate. «New key» makes a new event of it.",
        "Первая отправка идёт с ключом из образца; повторная показывает, что okno не отправит дубль. «С новым ключом» — новое событие.",
    ),
    ("demo_post", "Post", "Отправить"),
    ("demo_post_again", "With a new key", "С новым ключом"),
    ("demo_recipients", "Goes to", "Кому"),
    ("demo_subscriber", "whoever asked the shop bot about the order", "тому, кто спрашивал бота магазина о заказе"),
    (
        "demo_no_subscriber",
        "Nobody has asked the shop bot about order 100421 yet, so 1C has nobody to tell. On the phone, be Ольга Ромашкина or Наталья Белова, open «Стройторг · магазин» and send 100421; then post this event.",
        "Бота магазина ещё никто не спрашивал о заказе 100421, и 1С некого уведомить. В телефоне станьте Ольгой Ромашкиной или Натальей Беловой, откройте «Стройторг · магазин» и отправьте 100421; затем отправьте это событие.",
    ),
    ("demo_task", "A task for the couriers (examples/tasks)", "Задача курьерам (examples/tasks)"),
    ("demo_post_task", "Post the task to the couriers' group", "Отправить задачу в группу курьеров"),
    ("demo_survey", "Ask a survey now", "Провести опрос сейчас"),
    (
        "demo_survey_hint",
        "The surveys of examples/surveys are loaded; the NPS survey also starts by itself on order.completed.",
        "Опросы из examples/surveys загружены; опрос NPS ещё и сам начинается по событию order.completed.",
    ),
    ("demo_start_survey", "Start", "Начать"),
    (
        "demo_started_survey",
        "The survey has started: look at the person's phone.",
        "Опрос начат: загляните в телефон этого человека.",
    ),
    ("demo_broadcast", "A broadcast to a group", "Рассылка группе"),
    ("demo_broadcast_hint", "The same as the broadcasts page of the", "То же, что раздел рассылок в"),
    ("demo_group", "Group", "Группа"),
    (
        "demo_broadcast_sample",
        "Tomorrow at 9:00 — a general meeting in the hall on Lenina, 5. 📣",
        "Завтра в 9:00 — общее собрание в зале на Ленина, 5. 📣",
    ),
    ("demo_send_broadcast", "Send the broadcast", "Отправить рассылку"),
    ("demo_broadcast_created", "The broadcast is on its way.", "Рассылка отправляется."),
    ("demo_posted", "What 1C posted, and whom okno reached", "Что отправила 1С и кому доставил okno"),
    ("demo_nothing_yet", "Nothing posted yet.", "Пока ничего не отправлено."),
    ("demo_webhooks", "okno's webhooks received by 1C", "Вебхуки okno, полученные 1С"),
    (
        "demo_webhooks_hint",
        "Signed with HMAC and checked by 1C: button presses and answers, claimed tasks, survey answers.",
        "Подписаны HMAC и проверены 1С: нажатия кнопок и ответы, взятые задачи, ответы на опросы.",
    ),
    ("demo_received", "What the bots asked of 1C", "Что боты запросили у 1С"),
    (
        "demo_received_hint",
        "The lookups and forms of the example bots: product search, orders, tickets, vacation requests…",
        "Запросы и формы примеров ботов: поиск товаров, заказы, заявки, заявления на отпуск…",
    ),
    ("demo_received_nothing", "Nothing yet.", "Пока ничего."),
    ("demo_duplicate", "duplicate: nothing sent twice", "дубль: повторно ничего не отправлено"),
    ("demo_accepted", "Accepted by okno.", "Принято okno."),
    ("demo_failed", "Failed", "Не получилось"),
    ("demo_delivered_to", "to", "→"),
    ("demo_unresolved", "not reached", "не доставлено"),
    ("demo_status", "status", "статус"),
    ("demo_task_claimed_by", "taken by", "взял(а)"),
    ("demo_pressed", "pressed", "нажал(а)"),
    ("demo_press_answer", "an answer to a notification", "ответ на уведомление"),
    ("demo_press_broadcast", "an answer to a broadcast", "ответ на рассылку"),
    ("demo_press_bot_menu", "a button of a bot's menu", "кнопка меню бота"),
    ("demo_press_task", "a button of a task", "кнопка задачи"),
    ("demo_press_survey", "an answer to a survey", "ответ на опрос"),
    ("demo_press_button", "a button", "кнопка"),
    ("demo_task_open", "open: nobody has taken it yet", "открыта: пока никто не взял"),
    ("demo_role_manager", "sales manager", "менеджер по продажам"),
    ("demo_role_client", "client (ООО «Ромашка»)", "клиент (ООО «Ромашка»)"),
    ("demo_role_customer", "new customer", "новый покупатель"),
    ("demo_role_employee", "salesperson", "продавец-консультант"),
    ("demo_role_director", "director", "директор"),
    ("demo_role_courier", "courier", "курьер"),
    ("demo_role_it", "IT specialist", "специалист ИТ"),
    ("demo_role_it_head", "head of IT", "руководитель ИТ"),
    ("demo_role_buyer", "buyer (purchasing)", "закупщик"),
    ("demo_role_hr", "HR", "отдел кадров"),
    (
        "demo_hint_manager",
        "Gets 1C's notifications about payments, blocked orders and shipments. Post «order.blocked» from the 1C console and answer it with a button: the answer reaches 1C as a signed webhook.",
        "Получает уведомления 1С об оплатах, блокировках и отгрузках. Отправьте «order.blocked» из пульта 1С и ответьте кнопкой — ответ придёт в 1С подписанным вебхуком.",
    ),
    (
        "demo_hint_client",
        "A client linked to 1C. Gets the shipment notice, a request to rate the manager and the NPS survey (post «order.completed»); can ask the shop bot about order 100421 and get told when its stage changes.",
        "Клиент, связанный с 1С. Получает уведомление об отгрузке, просьбу оценить менеджера и опрос NPS (отправьте «order.completed»); может спросить бота магазина о заказе 100421 и узнать, когда сменится этап.",
    ),
    (
        "demo_hint_customer",
        "A customer 1C does not know. Open «Стройторг · магазин», press Start, then «💬 Связаться с менеджером» and write: an operator answers from the operator window.",
        "Покупатель, которого 1С не знает. Откройте «Стройторг · магазин», нажмите «Начать», затем «💬 Связаться с менеджером» и напишите — оператор ответит из окна оператора.",
    ),
    (
        "demo_hint_employee",
        "The staff bot finds products in 1C (type «дрель»), the personal-account bot sends a vacation request to 1C, the support bot opens a ticket. Start the 7th-day survey for her from the 1C console.",
        "Бот сотрудника ищет товары в 1С (напишите «дрель»), личный кабинет отправляет в 1С заявление на отпуск, бот поддержки заводит заявку. Опрос 7-го дня для неё можно начать из пульта 1С.",
    ),
    (
        "demo_hint_director",
        "Employees' questions from «✉️ Обратная связь → ❓ Вопрос директору» arrive here: answer one with Reply and it goes back to the employee. Also sees the department stock reports.",
        "Сюда приходят вопросы сотрудников из «✉️ Обратная связь → ❓ Вопрос директору»: ответьте через «Ответить», и ответ уйдёт сотруднику. Видит также отчёты об остатках подразделений.",
    ),
    (
        "demo_hint_courier",
        "In «Курьеры Стройторга»: post the task from the 1C console and press «Взять» — of the two couriers only the first gets it; «Подробнее» sends the client's details privately.",
        "В «Курьеры Стройторга»: отправьте задачу из пульта 1С и нажмите «Взять» — из двух курьеров её получит только первый; «Подробнее» присылает данные клиента лично.",
    ),
    (
        "demo_hint_it",
        "Gets critical IT requests («it.request_updated») with a «Взял в работу» button.",
        "Получает критичные заявки в ИТ («it.request_updated») с кнопкой «Взял в работу».",
    ),
    (
        "demo_hint_it_head",
        "The head of IT: gets critical IT requests too, and the department stock reports.",
        "Руководитель ИТ: тоже получает критичные заявки, а также отчёты об остатках подразделений.",
    ),
    (
        "demo_hint_buyer",
        "In the purchasing group: gets «stock.below_minimum».",
        "В группе закупок: получает «stock.below_minimum».",
    ),
    (
        "demo_hint_hr",
        "HR: gets the vacation requests employees send from the personal-account bot.",
        "Отдел кадров: получает заявления на отпуск, которые сотрудники отправляют из личного кабинета.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_in_both_languages_and_keys_are_unique() {
        let mut keys: Vec<&str> = TEXTS.iter().map(|(k, _, _)| *k).collect();
        for (k, en, ru) in TEXTS {
            assert!(!en.is_empty() && !ru.is_empty(), "{k}");
        }
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
    }
}
