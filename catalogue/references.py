"""The works the documents cite: one LaTeX bibliography entry per key, in citation order.

A catalogue entry names the works its cell comes from (`Entry.cites`); the documents also
cite the tutorial whose three principles they follow, the course notes whose patterns of
backward flow they use and the posts of their worked examples.
"""
from __future__ import annotations

REFERENCES = {
    "kang2019": r"A.~Kang and J.~D.~Seo. \emph{Understanding Backpropagation as Applied to LSTM}. "
                r"Tutorial, KDnuggets, 2019.",
    "hochreiter1997": r"S.~Hochreiter and J.~Schmidhuber. Long short-term memory. "
                      r"\emph{Neural Computation}, 9(8):1735--1780, 1997.",
    "gers2000forget": r"F.~A.~Gers, J.~Schmidhuber and F.~Cummins. Learning to forget: continual "
                      r"prediction with LSTM. \emph{Neural Computation}, 12(10):2451--2471, 2000.",
    "gers2000peephole": r"F.~A.~Gers and J.~Schmidhuber. Recurrent nets that time and count. In "
                        r"\emph{Proc.\ IJCNN}, 2000.",
    "greff2017": r"K.~Greff, R.~K.~Srivastava, J.~Koutník, B.~R.~Steunebrink and J.~Schmidhuber. "
                 r"LSTM: a search space odyssey. \emph{IEEE Transactions on Neural Networks and "
                 r"Learning Systems}, 28(10):2222--2232, 2017.",
    "cho2014": r"K.~Cho, B.~van Merriënboer, C.~Gulcehre, D.~Bahdanau, F.~Bougares, H.~Schwenk "
               r"and Y.~Bengio. Learning phrase representations using RNN encoder-decoder for "
               r"statistical machine translation. In \emph{Proc.\ EMNLP}, 2014.",
    "sak2014": r"H.~Sak, A.~Senior and F.~Beaufays. Long short-term memory recurrent neural network "
               r"architectures for large scale acoustic modeling. In \emph{Proc.\ Interspeech}, 2014.",
    "elman1990": r"J.~L.~Elman. Finding structure in time. \emph{Cognitive Science}, "
                 r"14(2):179--211, 1990.",
    "li2018indrnn": r"S.~Li, W.~Li, C.~Cook, C.~Zhu and Y.~Gao. Independently recurrent neural network "
                    r"(IndRNN): building a longer and deeper RNN. In \emph{Proc.\ CVPR}, 2018.",
    "beck2024xlstm": r"M.~Beck, K.~Pöppel, M.~Spanring, A.~Auer, O.~Prudnikova, M.~Kopp, "
                      r"G.~Klambauer, J.~Brandstetter and S.~Hochreiter. xLSTM: extended long "
                      r"short-term memory. In \emph{Advances in Neural Information Processing "
                      r"Systems (NeurIPS)}, 2024.",
    "nxai2024xlstm": r"NXAI. \emph{xlstm}: the reference implementation of xLSTM, "
                     r"\code{github.com/NX-AI/xlstm}, file "
                     r"\code{xlstm/blocks/slstm/src/cuda/slstm\_pointwise.cu}, 2024.",
    "zhou2016": r"G.-B.~Zhou, J.~Wu, C.-L.~Zhang and Z.-H.~Zhou. Minimal gated unit for recurrent "
                r"neural networks. \emph{International Journal of Automation and Computing}, "
                r"13(3):226--234, 2016.",
    "rumelhart1986": r"D.~E.~Rumelhart, G.~E.~Hinton and R.~J.~Williams. Learning representations "
                     r"by back-propagating errors. \emph{Nature}, 323:533--536, 1986.",
    "ba2016": r"J.~L.~Ba, J.~R.~Kiros and G.~E.~Hinton. Layer normalization. "
              r"\emph{arXiv:1607.06450}, 2016.",
    "olah2015": r"C.~Olah. \emph{Understanding LSTM Networks}. Blog post, colah.github.io, 2015.",
    "cs231n": r"A.~Karpathy and the CS231n teaching staff. \emph{Backpropagation, Intuitions}. Course "
              r"notes of CS231n, Convolutional Neural Networks for Visual Recognition, Stanford "
              r"University.",
    "gomez2016": r"A.~N.~Gomez. \emph{Backpropogating an LSTM: A Numerical Example}. Blog post, 2016.",
    "mazur2015": r"M.~Mazur. \emph{A Step by Step Backpropagation Example}. Blog post, 2015.",
}


def references(keys) -> tuple[tuple[str, str], ...]:
    """(key, entry) for each of `keys` (first mention first, each once); unknown keys raise."""
    seen = dict.fromkeys(keys)
    unknown = [k for k in seen if k not in REFERENCES]
    if unknown:
        raise KeyError(f"unknown reference {unknown[0]!r}; known: {', '.join(REFERENCES)}")
    return tuple((k, REFERENCES[k]) for k in seen)
