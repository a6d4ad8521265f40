"""Charts label every class and keep long class names whole."""
from core.eval_charts import confusion_figure
from core.tasks.outputs import ConfusionMatrix


def test_confusion_matrix_labels_every_class_and_keeps_long_names_whole():
    digits = ConfusionMatrix(tuple(str(i) for i in range(10)), tuple(tuple(int(i == j) * 4 for j in range(10)) for i in range(10)))
    fig = confusion_figure(digits, "digits").to_plotly_json()["layout"]
    for axis in (fig["xaxis"], fig["yaxis"]):
        assert list(axis["tickvals"]) == list(axis["ticktext"]) == [str(i) for i in range(10)]
        assert axis["type"] == "category" and axis["dtick"] == 1 and axis["automargin"] is True
    long = ["pedestrian crossing sign", "traffic light (amber)", "cat"]
    fig = confusion_figure(ConfusionMatrix(tuple(long), ((1, 0, 0), (0, 1, 0), (0, 0, 1))), "signs").to_plotly_json()
    assert list(fig["layout"]["xaxis"]["ticktext"]) == long and fig["layout"]["xaxis"]["tickangle"] == -45
    assert list(fig["data"][0]["x"]) == long and fig["layout"]["yaxis"]["automargin"] is True
