"""Every word that convnet's pictures and pages show, in one table per language.

English is the default; Korean is the language the lesson was written in, with its own terms
(합성곱 convolution, 커널 kernel, 특징 맵 feature map, 맥스 풀링 max pooling). Drawing code asks
`words(language)` for its text and fills in the numbers (``str.format`` fields), so a language
is one table here and nothing else.
"""

LANGUAGES = ("en", "ko")

_ENGLISH = {
    # convnet watch's page
    "watch.connecting": "connecting...",
    "watch.live": "live",
    "watch.disconnected": "disconnected",
    "watch.progress": "Progress",
    "watch.epoch": "epoch",
    "watch.step": "step",
    "watch.images_per_second": "images/s",
    "watch.test_accuracy": "test accuracy",
    "watch.time_left": "training left",
    "watch.done": "done",
    "watch.loss": "Loss",
    "watch.accuracy": "Accuracy",
    "watch.learning_rate": "Learning rate",
    "watch.train": "train",
    "watch.test": "test",
    "watch.confusion": "Confusion matrix (last epoch)",
    "watch.no_epoch": "no epoch has ended yet",
    "watch.per_class": "Accuracy per class (last epoch)",
    "watch.kernels": "Kernels of the first convolution layer",
    "watch.kernels_note": "input channel 0, all on one colour scale: red positive, blue negative",
    "watch.feature_maps": "Its feature maps of the first test image",
    "watch.feature_maps_note": "each map from its own minimum to its own maximum",
    "watch.snapshot": "step {step} (epoch {epochs})",
    "watch.no_snapshot": "no snapshot yet",
    "watch.missing": "{name} is missing from the run folder",
    "watch.follow": "drag to go back in time; at the right end it follows the run",
    "watch.settings": "Settings",
    "watch.model": "Model",
}

_KOREAN = {
    "watch.connecting": "연결 중...",
    "watch.live": "실시간",
    "watch.disconnected": "연결 끊김",
    "watch.progress": "진행 상황",
    "watch.epoch": "에폭",
    "watch.step": "스텝",
    "watch.images_per_second": "이미지/초",
    "watch.test_accuracy": "테스트 정확도",
    "watch.time_left": "남은 학습 시간",
    "watch.done": "완료",
    "watch.loss": "손실",
    "watch.accuracy": "정확도",
    "watch.learning_rate": "학습률",
    "watch.train": "학습",
    "watch.test": "테스트",
    "watch.confusion": "혼동 행렬 (마지막 에폭)",
    "watch.no_epoch": "아직 끝난 에폭이 없습니다",
    "watch.per_class": "클래스별 정확도 (마지막 에폭)",
    "watch.kernels": "첫 번째 합성곱 층의 커널",
    "watch.kernels_note": "입력 채널 0, 모두 하나의 색 척도: 빨강은 양수, 파랑은 음수",
    "watch.feature_maps": "첫 번째 테스트 이미지의 특징 맵",
    "watch.feature_maps_note": "맵마다 자신의 최솟값에서 최댓값까지",
    "watch.snapshot": "스텝 {step} (에폭 {epochs})",
    "watch.no_snapshot": "아직 스냅숏이 없습니다",
    "watch.missing": "실행 폴더에 {name} 파일이 없습니다",
    "watch.follow": "끌어서 지난 시점을 봅니다. 오른쪽 끝에서는 학습을 따라갑니다",
    "watch.settings": "설정",
    "watch.model": "모델",
}

# The datasets' class names, for the languages that name them differently.
_CLASS_NAMES = {"ko": {"T-shirt/top": "티셔츠/탑", "Trouser": "바지", "Pullover": "풀오버", "Dress": "드레스",
                       "Coat": "코트", "Sandal": "샌들", "Shirt": "셔츠", "Sneaker": "스니커즈", "Bag": "가방",
                       "Ankle boot": "앵클 부츠"}}

_TABLES = {"en": _ENGLISH, "ko": _KOREAN}


def words(language="en"):
    """The table of ``language`` (one of `LANGUAGES`): every key of the English table, each a
    text or a ``str.format`` template."""
    if language not in _TABLES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return _TABLES[language]


def class_names(classes, language="en"):
    """``classes`` as ``language`` names them; names it has no word for stay as they are."""
    translated = _CLASS_NAMES.get(language, {})
    return tuple(translated.get(name, name) for name in classes)
