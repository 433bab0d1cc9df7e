"""Every word that convnet's pictures and pages show, in one table per language.

English is the default; Korean is the language the lesson was written in, with its own terms
(합성곱 convolution, 커널 kernel, 특징 맵 feature map, 맥스 풀링 max pooling). Drawing code asks
`words(language)` for its text and fills in the numbers (``str.format`` fields), so a language
is one table here and nothing else.
"""

from .errors import ConvnetError, InvalidValue

LANGUAGES = ("en", "ko")


class FontMissing(ConvnetError, RuntimeError):
    """No installed font has the letters of the language asked for."""


_ENGLISH = {
    # convnet show: the lesson's pictures (viz.lesson), the page's sections (viz.show, viz.page)
    "lesson.title": "The lesson: {kernels} kernels of {size}x{size} over a {height}x{width} image, then 2x2 max pooling "
                    "(untrained kernels)",
    "convolution.input": "input {height}x{width}",
    "convolution.kernel": "kernel {index}: {height}x{width} weights",
    "convolution.map": "feature map {index} of layer '{layer}' ({height}x{width})",
    "convolution.zoomed_windows": "zoomed: the kernel's window at three positions",
    "convolution.zoomed_outputs": "zoomed: the output each position produced",
    "convolution.window": "window at ({top}, {left})\n-> output ({row}, {col}) = {value:.3f}",
    "convolution.title": "Convolution: each position of the kernel gives one output, tied to that place in the image\n"
                         "(output = sum of kernel weights x the pixels under it + bias; cross-correlation: the kernel "
                         "is not flipped)",
    "maps.each_scaled": "each map: its minimum (0) to its maximum (1)",
    "pooling.map": "feature map {index} after activation ({height}x{width})",
    "pooling.pooled": "pooled map of layer '{layer}' ({height}x{width})",
    "pooling.zoomed_map": "zoomed: one {height}x{width} neighbourhood, its maximum starred",
    "pooling.zoomed_pooled": "zoomed: the maximum lands at ({row}, {col})",
    "pooling.values": "its values:\nthe maximum is kept",
    "pooling.maximum": "max = {value:.3f}\n-> pooled ({row}, {col})",
    "pooling.title": "Max pooling: each value is compared with its neighbourhood and the maximum is kept, giving a "
                     "smaller map",
    "probabilities.axis": "probability",
    "probabilities.title": "Class probabilities (softmax of the last layer)",
    "probabilities.mirrored": "Class probabilities (softmax of the last layer, averaged with the mirror image's)",
    "gif.window": "kernel window",
    "gif.map": "feature map: ({row}, {col}) = {value:.2f}",
    "show.convolution": "(a) Convolution: a kernel slides over the image",
    "show.convolution_text": "A {height}x{width} kernel (kernel {index} of {count}) is laid on the image at every "
                             "position; at each it multiplies the pixels under it by its weights and sums them, giving "
                             "one output tied to that place. Three positions are drawn, each in its own colour, with "
                             "the value it produced and where it lands in the feature map.",
    "show.maps": "(b) Feature maps: one per kernel",
    "show.maps_text": "Each of the {count} kernels gives its own {height}x{width} feature map: bright where the image "
                      "looks like that kernel. The first grid draws each map from its own minimum to its own maximum, "
                      "so every map shows its pattern; the second puts all on one colour scale, which shows which "
                      "kernels respond most.",
    "show.maps_each": "All {count} feature maps of layer '{layer}' (each on its own scale)",
    "show.maps_shared": "All {count} feature maps of layer '{layer}' (one colour scale)",
    "show.pooling": "(c) Max pooling: keep the largest value of each neighbourhood",
    "show.pooling_text": "Each value is compared with its neighbours and only the maximum is kept, so the map shrinks "
                         "while the strongest responses survive.",
    "show.pooled_maps": "All {count} pooled maps of layer '{layer}'",
    "show.kernels": "The {count} kernels of layer '{layer}' (input channel 0)",
    "show.colour_kernels": "The {count} kernels of layer '{layer}' in colour (each kernel's R, G, B weights scaled "
                           "together: its smallest weight black, its largest full colour)",
    "show.kernel_channels": "The {count} kernels of layer '{layer}', channel by channel (rows R, G, B; red "
                            "positive, blue negative, one scale)",
    "lesson.colour_kernel": "kernel {index}: {height}x{width}x3 weights in colour",
    "show.deeper": "Feature maps of the deeper layer '{layer}'",
    "show.answer": "(d) Kernels, deeper layers and the answer",
    "show.answer_text": "The kernels themselves (red positive weights, blue negative), the maps of the deeper "
                        "convolution layers, which combine the first layer's maps, and the class probabilities that "
                        "the stacked layers, trained by backpropagation, compute from the image.",
    "show.training": "Training",
    "show.training_text": "Loss and accuracy per epoch of this run.",
    "page.made": "made by convnet on {date}",
    "page.model": "Model",
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
    "watch.accuracy_minutes": "Test accuracy against minutes",
    "watch.accuracy_minutes_note": "wall-clock minutes of training and test evaluation, summed epoch by epoch; "
                                   "dashed: the targets",
    "watch.minutes": "minutes",
    "watch.shipped": "shipped weights",
    "watch.untimed": "epochs logged before convnet timed them (and every later one) are not drawn",
    # the pictures of large networks: grids strongest first, a few deeper stages, the top classes
    "ranked.maps_each": "The {count} feature maps of layer '{layer}', strongest first (largest mean |value|; "
                        "numbers: channel), each on its own scale",
    "ranked.maps_shared": "The {count} feature maps of layer '{layer}', strongest first (largest mean |value|; "
                          "numbers: channel), one colour scale",
    "ranked.pooled_maps": "The {count} pooled maps of layer '{layer}' ({height}x{width}), strongest first "
                          "(numbers: channel)",
    "ranked.deeper": "The {shown} strongest of the {count} maps after layer '{layer}' ({height}x{width}), "
                     "strongest first (largest mean |value|; numbers: channel)",
    "ranked.order": "Every grid draws its maps strongest first (largest mean |value|, for maps after a ReLU "
                    "their mean activation), each numbered with its channel.",
    "ranked.no_pooling": "(c) No max pooling",
    "ranked.no_pooling_text": "This network has no max pooling after layer '{layer}': it shrinks its maps with "
                              "strided convolutions (or average pooling) instead, as the deeper maps below show.",
    "ranked.top": "The {shown} most likely of {count} classes (softmax of the last layer)",
    "ranked.top_mirrored": "The {shown} most likely of {count} classes (softmax of the last layer, averaged "
                           "with the mirror image's)",
    "ranked.class": "class {index}",
}

_KOREAN = {
    "lesson.title": "수업: {height}x{width} 이미지 위의 {size}x{size} 커널 {kernels}개, 그리고 2x2 맥스 풀링 "
                    "(학습 전 커널)",
    "convolution.input": "입력 {height}x{width}",
    "convolution.kernel": "커널 {index}: {height}x{width} 가중치",
    "convolution.map": "'{layer}' 층의 특징 맵 {index} ({height}x{width})",
    "convolution.zoomed_windows": "확대: 세 위치에 놓인 커널의 창",
    "convolution.zoomed_outputs": "확대: 각 위치가 만든 출력",
    "convolution.window": "({top}, {left})의 창\n-> 출력 ({row}, {col}) = {value:.3f}",
    "convolution.title": "합성곱: 커널의 각 위치는 이미지의 그 자리에 묶인 출력 하나를 만듭니다\n"
                         "(출력 = 커널 가중치 x 그 아래 픽셀의 합 + 편향; 교차 상관: 커널을 뒤집지 않습니다)",
    "maps.each_scaled": "맵마다: 최솟값(0)에서 최댓값(1)까지",
    "pooling.map": "활성화 후의 특징 맵 {index} ({height}x{width})",
    "pooling.pooled": "'{layer}' 층의 풀링된 맵 ({height}x{width})",
    "pooling.zoomed_map": "확대: {height}x{width} 이웃 하나, 최댓값에 별표",
    "pooling.zoomed_pooled": "확대: 최댓값은 ({row}, {col})에 놓입니다",
    "pooling.values": "이웃의 값:\n최댓값만 남습니다",
    "pooling.maximum": "최댓값 = {value:.3f}\n-> 풀링 결과 ({row}, {col})",
    "pooling.title": "맥스 풀링: 각 값을 이웃과 비교해 최댓값만 남기므로 맵이 작아집니다",
    "probabilities.axis": "확률",
    "probabilities.title": "클래스 확률 (마지막 층의 소프트맥스)",
    "probabilities.mirrored": "클래스 확률 (좌우 반전 이미지의 출력과 평균한 마지막 층의 소프트맥스)",
    "gif.window": "커널의 창",
    "gif.map": "특징 맵: ({row}, {col}) = {value:.2f}",
    "show.convolution": "(a) 합성곱: 커널이 이미지 위를 미끄러집니다",
    "show.convolution_text": "{height}x{width} 커널({count}개 중 커널 {index})을 이미지의 모든 위치에 놓습니다. 위치마다 그 "
                             "아래 픽셀에 가중치를 곱해 더하면, 그 자리에 묶인 출력 하나가 나옵니다. 세 위치를 각자의 "
                             "색으로 그리고, 그 위치가 만든 값과 특징 맵에서 놓이는 자리를 함께 보입니다.",
    "show.maps": "(b) 특징 맵: 커널마다 하나",
    "show.maps_text": "{count}개의 커널은 각자 {height}x{width} 특징 맵을 만듭니다. 이미지가 그 커널을 닮은 곳이 밝습니다. "
                      "첫 번째 격자는 맵마다 자신의 최솟값에서 최댓값까지 그려 모든 맵의 무늬가 보이고, 두 번째 격자는 "
                      "모두 하나의 색 척도로 그려 어느 커널이 가장 강하게 반응하는지 보입니다.",
    "show.maps_each": "'{layer}' 층의 특징 맵 {count}개 (맵마다 자신의 척도)",
    "show.maps_shared": "'{layer}' 층의 특징 맵 {count}개 (하나의 색 척도)",
    "show.pooling": "(c) 맥스 풀링: 이웃마다 가장 큰 값을 남깁니다",
    "show.pooling_text": "각 값을 이웃과 비교해 최댓값만 남깁니다. 맵은 작아지고 가장 강한 반응은 살아남습니다.",
    "show.pooled_maps": "'{layer}' 층의 풀링된 맵 {count}개",
    "show.kernels": "'{layer}' 층의 커널 {count}개 (입력 채널 0)",
    "show.colour_kernels": "'{layer}' 층의 커널 {count}개를 색으로 (커널마다 R, G, B 가중치를 함께 조정: 가장 작은 "
                           "가중치는 검정, 가장 큰 가중치는 온전한 색)",
    "show.kernel_channels": "'{layer}' 층의 커널 {count}개, 채널별 (행 R, G, B; 빨강은 양수, 파랑은 음수, 하나의 척도)",
    "lesson.colour_kernel": "커널 {index}: {height}x{width}x3 가중치를 색으로",
    "show.deeper": "더 깊은 층 '{layer}'의 특징 맵",
    "show.answer": "(d) 커널, 더 깊은 층, 그리고 답",
    "show.answer_text": "커널 자체(빨강은 양의 가중치, 파랑은 음의 가중치), 첫 번째 층의 맵을 조합하는 더 깊은 합성곱 층의 "
                        "맵, 그리고 역전파로 학습한 층들이 이미지에서 계산한 클래스 확률입니다.",
    "show.training": "학습",
    "show.training_text": "이 실행의 에폭별 손실과 정확도.",
    "page.made": "{date}에 convnet이 만듦",
    "page.model": "모델",
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
    "watch.accuracy_minutes": "학습 시간(분)에 따른 테스트 정확도",
    "watch.accuracy_minutes_note": "학습과 테스트 평가에 걸린 실제 시간(분)을 에폭마다 더한 값; 점선: 목표 정확도",
    "watch.minutes": "분",
    "watch.shipped": "배포된 가중치",
    "watch.untimed": "convnet이 시간을 재기 전에 기록된 에폭(과 그 뒤의 모든 에폭)은 그리지 않습니다",
    # the pictures of large networks
    "ranked.maps_each": "'{layer}' 층의 특징 맵 {count}개, 강한 맵부터 (|값|의 평균이 큰 순; 번호: 채널), "
                        "맵마다 자신의 척도",
    "ranked.maps_shared": "'{layer}' 층의 특징 맵 {count}개, 강한 맵부터 (|값|의 평균이 큰 순; 번호: 채널), "
                          "하나의 색 척도",
    "ranked.pooled_maps": "'{layer}' 층의 풀링된 맵 {count}개 ({height}x{width}), 강한 맵부터 (번호: 채널)",
    "ranked.deeper": "'{layer}' 층 뒤의 맵 {count}개 중 가장 강한 {shown}개 ({height}x{width}), 강한 맵부터 "
                     "(|값|의 평균이 큰 순; 번호: 채널)",
    "ranked.order": "모든 격자는 강한 맵부터 그립니다 (|값|의 평균이 큰 순, ReLU 뒤의 맵이면 평균 활성값 순). 번호는 "
                    "채널입니다.",
    "ranked.no_pooling": "(c) 맥스 풀링 없음",
    "ranked.no_pooling_text": "이 신경망은 '{layer}' 층 뒤에 맥스 풀링이 없습니다. 대신 보폭이 있는 합성곱(또는 평균 "
                              "풀링)으로 맵을 줄입니다. 아래의 더 깊은 맵이 그것을 보여 줍니다.",
    "ranked.top": "클래스 {count}개 중 가장 가능성이 높은 {shown}개 (마지막 층의 소프트맥스)",
    "ranked.top_mirrored": "클래스 {count}개 중 가장 가능성이 높은 {shown}개 (좌우 반전 이미지의 출력과 평균한 마지막 층의 "
                           "소프트맥스)",
    "ranked.class": "클래스 {index}",
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
        raise InvalidValue(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    return _TABLES[language]


def class_names(classes, language="en"):
    """``classes`` as ``language`` names them; names it has no word for stay as they are."""
    translated = _CLASS_NAMES.get(language, {})
    return tuple(translated.get(name, name) for name in classes)
