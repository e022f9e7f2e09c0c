"""What the grader tells a student, in English and Russian."""

TEXT: dict[str, dict[str, str]] = {
    "passed": {"en": "passed", "ru": "пройдено"},
    "failed": {"en": "failed", "ru": "не пройдено"},
    "manual": {"en": "to be graded by the instructor", "ru": "ждёт проверки преподавателем"},
    "graded_by_person": {"en": "graded by the instructor", "ru": "проверено преподавателем"},
    "blank": {"en": "no answer", "ru": "нет ответа"},
    "comment": {"en": "Instructor's comment", "ru": "Комментарий преподавателя"},
    # What stands in a written answer's place when the student deleted its cell (Markdown).
    "missing_written": {
        "en": "*(answer cell missing from the submission)*",
        "ru": "*(в работе нет ячейки с ответом)*",
    },
    "not_written": {
        "en": "the answer is not written yet (NotImplementedError)",
        "ru": "ответ ещё не написан (NotImplementedError)",
    },
    "error_hidden": {
        "en": "the code raised {ename} during the test",
        "ru": "код выбросил {ename} во время теста",
    },
    "stderr": {
        "en": "the cell printed a warning or an error (stderr), which nbgrader scores as a failure",
        "ru": "ячейка вывела предупреждение или ошибку (stderr), это засчитывается как неудача",
    },
    "missing": {
        "en": "the answer cell {grade_id} is missing from the submission",
        "ru": "в работе нет ячейки ответа {grade_id}",
    },
    "stopped": {"en": "not run: {reason}", "ru": "не выполнено: {reason}"},
    "an_exception": {"en": "an exception", "ru": "исключение"},
    "title": {"en": "Feedback", "ru": "Отзыв"},
    "exercise": {"en": "Exercise", "ru": "Упражнение"},
    "points": {"en": "Points", "ru": "Баллы"},
    "result": {"en": "Result", "ru": "Результат"},
    "details": {"en": "Details", "ru": "Подробности"},
    "total": {"en": "Total", "ru": "Итого"},
    "student": {"en": "Student", "ru": "Студент"},
    "assignment": {"en": "Assignment", "ru": "Задание"},
    "submitted_at": {"en": "Submitted", "ru": "Сдано"},
    "late": {"en": "late by {duration}", "ru": "опоздание {duration}"},
    "not_graded": {
        "en": "This submission could not be graded: {reason}",
        "ru": "Работу не удалось проверить: {reason}",
    },
    "notices": {"en": "Notes from the grader", "ru": "Замечания проверяющей системы"},
    "hidden_note": {
        "en": "Tests marked hidden ran on inputs you did not see; only their verdict is shown.",
        "ru": "Скрытые тесты запускались на данных, которых вы не видели; показан только их итог.",
    },
}


# Why a run stopped: the codes of autograder.grading.protocol.STOP_REASONS.
STOP_REASONS: dict[str, dict[str, str]] = {
    "cell_time": {"en": "a cell ran past the time limit", "ru": "ячейка превысила лимит времени"},
    "notebook_time": {
        "en": "the notebook ran past the time limit",
        "ru": "тетрадка превысила лимит времени",
    },
    "output_limit": {"en": "the notebook printed too much", "ru": "тетрадка вывела слишком много текста"},
    "memory": {"en": "the notebook ran out of memory", "ru": "тетрадке не хватило памяти"},
    "exited": {"en": "the notebook ended its own process", "ru": "тетрадка завершила свой процесс"},
    "killed": {
        "en": "the process was killed (out of memory, a crash, or a signal)",
        "ru": "процесс был убит (нехватка памяти, сбой или сигнал)",
    },
    "crashed": {"en": "the grader's runner failed", "ru": "сбой исполнителя проверки"},
    "ended": {
        "en": "the process ended before the notebook finished",
        "ru": "процесс завершился раньше, чем тетрадка",
    },
    "protocol": {
        "en": "the notebook interfered with the grader's channel",
        "ru": "тетрадка вмешалась в канал связи с проверяющей системой",
    },
    "sandbox": {"en": "the sandbox stopped", "ru": "песочница остановилась"},
    "unclean": {
        "en": "the sandbox could not be cleaned after the notebook",
        "ru": "песочницу не удалось очистить после тетрадки",
    },
}


# What common errors mean, recognised by a fragment of their message; the student sees only these words.
KNOWN_ERRORS: list[tuple[str, dict[str, str]]] = [
    (
        "does not require grad and does not have a grad_fn",
        {
            "en": "backward() reached a tensor that does not require grad: was requires_grad=True set?",
            "ru": "backward() дошёл до тензора, который не требует градиента: задан ли requires_grad=True?",
        },
    ),
    (
        "backward through the graph a second time",
        {
            "en": "backward() went through the same graph twice: rebuild the graph or pass retain_graph=True",
            "ru": "backward() прошёл по графу дважды: постройте граф заново или задайте retain_graph=True",
        },
    ),
    (
        "leaf Variable that requires grad is being used in an in-place operation",
        {
            "en": "a leaf that requires grad was changed in place: update it under torch.no_grad()",
            "ru": "лист, требующий градиента, изменён на месте: обновляйте его внутри torch.no_grad()",
        },
    ),
    (
        "grad can be implicitly created only for scalar outputs",
        {
            "en": "backward() on a tensor with several elements needs a gradient argument (or .sum() first)",
            "ru": "backward() для тензора из нескольких элементов требует gradient (или сначала .sum())",
        },
    ),
    (
        "Call tensor.detach().numpy() instead",
        {
            "en": ".numpy() on a tensor that requires grad: call .detach() first",
            "ru": ".numpy() у тензора, требующего градиента: сначала вызовите .detach()",
        },
    ),
    (
        "Expected all tensors to be on the same device",
        {
            "en": "tensors on different devices were combined: move them to one device with .to(device)",
            "ru": "объединены тензоры на разных устройствах: переместите их на одно через .to(device)",
        },
    ),
    (
        "must match the size of tensor",
        {
            "en": "the shapes of two tensors do not fit together",
            "ru": "формы двух тензоров не согласуются",
        },
    ),
    (
        "cannot be multiplied",
        {
            "en": "the shapes of two matrices do not fit for a product",
            "ru": "формы двух матриц не подходят для произведения",
        },
    ),
]


def known_error(evalue: str, lang: str) -> str | None:
    """The catalogue's explanation of an error message it recognises, else None."""
    for fragment, entry in KNOWN_ERRORS:
        if fragment in evalue:
            return entry[lang if lang in entry else "en"]
    return None


def stop_reason(code: str, lang: str) -> str:
    """The catalogue's words for a stop reason code (never text from the run)."""
    entry = STOP_REASONS.get(code, STOP_REASONS["ended"])
    return entry[lang if lang in entry else "en"]


def text(key: str, lang: str, **fields) -> str:
    return TEXT[key][lang if lang in TEXT[key] else "en"].format(**fields)
